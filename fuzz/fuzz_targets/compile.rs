//! The whole front end and both back ends on arbitrary input: parse → read → check →
//! lower → emit (deploy.sh, plan text, plan JSON), plus the rendering of every
//! diagnostic. Beyond "no panic", it checks the pipeline's contract: a plan exactly when
//! there are no errors, and a plan always renders.

#![no_main]

use anklumec::compile::{Options, compile_source};
use anklumec::diagnostics::render;
use anklumec::emit;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The CLI refuses input that is not UTF-8 before compiling; the lossy decoding
    // still lets every byte string reach the parser.
    let text = String::from_utf8_lossy(data);
    for deny_warnings in [false, true] {
        let compilation = compile_source("fuzz.yml", &text, Options { deny_warnings });
        assert_eq!(compilation.plan.is_some(), !compilation.has_errors(), "a plan exactly when there is no error");
        let _ = render::to_text(&compilation.sources, &compilation.diagnostics, false);
        let _ = render::to_json_lines(&compilation.sources, &compilation.diagnostics);
        if let Some(plan) = &compilation.plan {
            if let Err(error) = emit::deploy_script(plan) {
                panic!("a checked plan does not render: {error}");
            }
            let _ = emit::plan_text(plan);
            assert!(serde_json::to_string(plan).is_ok(), "the plan serialises");
        }
        if compilation.plan.is_none() || deny_warnings {
            break;
        }
    }
});
