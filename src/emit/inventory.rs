//! The provisioning back end: an Ansible inventory (`inventory.yml`) and playbook
//! (`site.yml`) for the instances the plan deploys, through the templates
//! `templates/inventory.yml.j2` and `templates/site.yml.j2`. Every value passes through
//! the `yaml` filter, which writes it as a JSON scalar (valid YAML, quoted), tagged
//! `!unsafe` when Ansible would take it for a template (see `yaml_scalar`).

use super::bash::{EmitError, comment_safe};
use crate::plan::{Action, InstanceSpec, Plan};
use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde::Serialize;
use std::collections::BTreeMap;

const INVENTORY_TEMPLATE: &str = include_str!("../../templates/inventory.yml.j2");
const SITE_TEMPLATE: &str = include_str!("../../templates/site.yml.j2");

/// The connection plugin anklume provisions through when infra.yml names none.
pub const DEFAULT_CONNECTION: &str = "community.general.incus";

/// The files of an inventory directory, by file name.
pub fn inventory_files(plan: &Plan) -> Result<Vec<(&'static str, String)>, EmitError> {
    let mut environment = Environment::new();
    environment.set_undefined_behavior(UndefinedBehavior::Strict);
    environment.set_auto_escape_callback(|_| AutoEscape::None);
    environment.add_filter("comment", |value: String| comment_safe(&value));
    environment.add_filter("yaml", |value: minijinja::Value| -> Result<String, minijinja::Error> {
        let value = serde_json::to_value(&value)
            .map_err(|error| minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, error.to_string()))?;
        Ok(yaml_scalar(&value))
    });
    let view = view(plan);
    let mut files = Vec::new();
    for (name, source) in [("inventory.yml", INVENTORY_TEMPLATE), ("site.yml", SITE_TEMPLATE)] {
        environment.add_template(name, source).map_err(|error| EmitError(error.to_string()))?;
        let template = environment.get_template(name).map_err(|error| EmitError(error.to_string()))?;
        let mut text =
            template.render(minijinja::value::Serde(&view)).map_err(|error| EmitError(format!("{error:#}")))?;
        text.push('\n');
        files.push((name, text));
    }
    Ok(files)
}

/// `value` as YAML: JSON (valid YAML, strings quoted), except that a string Ansible
/// would take for a template (it holds `{{`, `{%` or `{#`) is tagged `!unsafe`. Ansible
/// templates inventory variables and playbook fields when it uses them, and a value
/// from infra.yml such as `{{ lookup('pipe', 'rm -rf ~') }}` would run on the
/// controller; `!unsafe` keeps it the literal text it is.
fn yaml_scalar(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(text) if ["{{", "{%", "{#"].iter().any(|open| text.contains(open)) => {
            format!("!unsafe {value}")
        }
        serde_json::Value::Array(items) => format!("[{}]", items.iter().map(yaml_scalar).collect::<Vec<_>>().join(",")),
        _ => value.to_string(),
    }
}

#[derive(Serialize)]
struct View<'a> {
    plan: &'a Plan,
    connection: &'a str,
    domains: Vec<DomainView<'a>>,
    plays: Vec<Play<'a>>,
}

#[derive(Serialize)]
struct DomainView<'a> {
    #[serde(flatten)]
    info: &'a crate::plan::DomainInfo,
    hosts: Vec<HostView<'a>>,
}

#[derive(Serialize)]
struct HostView<'a> {
    name: &'a str,
    #[serde(rename = "type")]
    instance_type: &'static str,
    description: &'a str,
    ephemeral: bool,
    image: &'a str,
    address: Option<String>,
    gpu: bool,
    profiles: &'a [String],
    roles: &'a [String],
}

#[derive(Serialize)]
struct Play<'a> {
    name: &'a str,
    roles: &'a [String],
}

fn view(plan: &Plan) -> View<'_> {
    let instances: BTreeMap<(&str, &str), &InstanceSpec> = plan
        .steps
        .iter()
        .filter_map(|step| match &step.action {
            Action::EnsureInstance(spec) => Some(((spec.project.as_str(), spec.name.as_str()), &**spec)),
            _ => None,
        })
        .collect();
    let mut plays = Vec::new();
    let domains = plan
        .provisioning
        .domains
        .iter()
        .map(|domain| {
            let hosts = domain
                .instances
                .iter()
                .filter_map(|name| instances.get(&(domain.project.as_str(), name.as_str())))
                .map(|spec| {
                    if !spec.roles.is_empty() {
                        plays.push(Play { name: &spec.name, roles: &spec.roles });
                    }
                    HostView {
                        name: &spec.name,
                        instance_type: spec.instance_type.keyword(),
                        description: &spec.description,
                        ephemeral: spec.config.get("security.protection.delete").is_some_and(|p| p == "false"),
                        image: &spec.image,
                        address: spec.address.map(|a| a.to_string()),
                        gpu: spec.gpu,
                        profiles: &spec.profiles,
                        roles: &spec.roles,
                    }
                })
                .collect();
            DomainView { info: domain, hosts }
        })
        .collect();
    let connection = plan.provisioning.default_connection.as_deref().unwrap_or(DEFAULT_CONNECTION);
    View { plan, connection, domains, plays }
}
