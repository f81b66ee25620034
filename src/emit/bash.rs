//! The bash back end: deploy.sh from the plan, through the minijinja template
//! `templates/deploy.sh.j2`. Every value that reaches the script passes through one
//! filter, `sh`, which quotes it for bash; the template never splices raw text.

use crate::plan::{Action, Config, Devices, Plan, Stamped, stamp};
use crate::syntax::ast::InstanceType;
use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde::Serialize;

const DEPLOY_TEMPLATE: &str = include_str!("../../templates/deploy.sh.j2");
const DESTROY_TEMPLATE: &str = include_str!("../../templates/destroy.sh.j2");
const COMMON_TEMPLATE: &str = include_str!("../../templates/common.sh.j2");

#[derive(Debug)]
pub struct EmitError(pub String);

impl std::fmt::Display for EmitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot render deploy.sh: {}", self.0)
    }
}

impl std::error::Error for EmitError {}

/// Quote a string as one bash word. Fails only on a NUL byte, which the checker
/// rejects before a plan exists.
pub fn shell_quote(value: &str) -> Result<String, EmitError> {
    shlex::try_quote(value)
        .map(|quoted| quoted.into_owned())
        .map_err(|_| EmitError(format!("cannot quote {value:?} for bash (NUL byte)")))
}

/// Text for a `#` comment: control characters (a newline would end the comment and
/// start a command) are written as escapes.
pub fn comment_safe(value: &str) -> String {
    value.chars().flat_map(|c| if c.is_control() { c.escape_default().collect::<Vec<_>>() } else { vec![c] }).collect()
}

pub fn deploy_script(plan: &Plan) -> Result<String, EmitError> {
    render("deploy.sh", DEPLOY_TEMPLATE, &view(plan))
}

/// destroy.sh: removes what the plan creates, in reverse dependency order (instances,
/// volumes, profiles, projects, bridges), keeping protected instances unless FORCE=1.
pub fn destroy_script(plan: &Plan) -> Result<String, EmitError> {
    let mut view = view(plan);
    let order = |action: &str| match action {
        "ensure_instance" => Some(0),
        "ensure_volume" => Some(1),
        "ensure_profile" => Some(2),
        "ensure_project" => Some(3),
        "ensure_network" => Some(4),
        _ => None,
    };
    // A project's default profile goes with the project; Incus refuses to delete it.
    view.steps
        .retain(|step| order(step.action).is_some() && !(step.action == "ensure_profile" && step.name == "default"));
    view.steps.reverse();
    view.steps.sort_by_key(|step| order(step.action));
    render("destroy.sh", DESTROY_TEMPLATE, &view)
}

fn render(name: &str, source: &str, view: &View<'_>) -> Result<String, EmitError> {
    let mut environment = Environment::new();
    environment.set_undefined_behavior(UndefinedBehavior::Strict);
    environment.set_auto_escape_callback(|_| AutoEscape::None);
    environment.add_filter("sh", |value: String| -> Result<String, minijinja::Error> {
        shell_quote(&value).map_err(|error| minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, error.0))
    });
    environment.add_filter("comment", |value: String| comment_safe(&value));
    environment.add_template("common.sh.j2", COMMON_TEMPLATE).map_err(|error| EmitError(error.to_string()))?;
    environment.add_template(name, source).map_err(|error| EmitError(error.to_string()))?;
    let template = environment.get_template(name).map_err(|error| EmitError(error.to_string()))?;
    let mut script = template.render(minijinja::value::Serde(view)).map_err(|error| EmitError(format!("{error:#}")))?;
    // minijinja drops the template's final newline.
    script.push('\n');
    Ok(script)
}

/// What the template sees: the plan, plus per-step fields flattened into the strings
/// the helpers take (`key=value`), and the stamps.
#[derive(Serialize)]
struct View<'a> {
    plan: &'a Plan,
    projects: Vec<&'a str>,
    image_instances: Vec<Vec<String>>,
    instances: Vec<StepView>,
    steps: Vec<StepView>,
}

#[derive(Serialize, Default)]
struct StepView {
    id: String,
    title: String,
    origin: String,
    action: &'static str,
    project: String,
    name: String,
    description: String,
    #[serde(rename = "type")]
    instance_type: &'static str,
    pool: String,
    image: String,
    profiles: Vec<String>,
    /// `key=value` words (projects, networks, volumes).
    config: Vec<String>,
    /// `(key, value)` pairs (profiles, instances: one `ak_config` line each).
    config_pairs: Vec<(String, String)>,
    device_list: Vec<DeviceView>,
    stamp: String,
}

#[derive(Serialize)]
struct DeviceView {
    name: String,
    #[serde(rename = "type")]
    device_type: String,
    options: Vec<String>,
}

fn words(config: &Config) -> Vec<String> {
    config.iter().map(|(key, value)| format!("{key}={value}")).collect()
}

fn devices(devices: &Devices) -> Vec<DeviceView> {
    devices
        .iter()
        .map(|(name, device)| DeviceView {
            name: name.clone(),
            device_type: device.device_type.clone(),
            options: words(&device.options),
        })
        .collect()
}

fn type_keyword(instance_type: InstanceType) -> &'static str {
    instance_type.keyword()
}

fn view(plan: &Plan) -> View<'_> {
    let mut projects = Vec::new();
    let mut instances = Vec::new();
    let mut steps = Vec::new();
    let mut types = std::collections::BTreeMap::new();
    for step in &plan.steps {
        let origin = step.origin.to_string();
        let mut view = StepView { id: step.id.clone(), origin: origin.clone(), ..StepView::default() };
        match &step.action {
            Action::EnsureProject(spec) => {
                projects.push(spec.name.as_str());
                view.action = "ensure_project";
                view.title = format!("project {}", spec.name);
                view.name = spec.name.clone();
                view.description = spec.description.clone();
                view.config = words(&spec.config);
            }
            Action::EnsureNetwork(spec) => {
                view.action = "ensure_network";
                view.title = format!("network {}", spec.name);
                view.name = spec.name.clone();
                view.description = spec.description.clone();
                view.config = words(&spec.config);
            }
            Action::EnsureVolume(spec) => {
                view.action = "ensure_volume";
                view.title = format!("volume {}/{}/{}", spec.project, spec.pool, spec.name);
                view.project = spec.project.clone();
                view.pool = spec.pool.clone();
                view.name = spec.name.clone();
                view.config = words(&spec.config);
            }
            Action::EnsureProfile(spec) => {
                view.action = "ensure_profile";
                view.title = format!("profile {}/{}", spec.project, spec.name);
                view.project = spec.project.clone();
                view.name = spec.name.clone();
                view.description = spec.description.clone();
                view.config_pairs = spec.config.clone().into_iter().collect();
                view.device_list = devices(&spec.devices);
                view.stamp = stamp(&Stamped {
                    description: &spec.description,
                    profiles: None,
                    config: &spec.config,
                    devices: &spec.devices,
                });
            }
            Action::EnsureInstance(spec) => {
                view.action = "ensure_instance";
                view.title = format!("instance {}/{}", spec.project, spec.name);
                view.project = spec.project.clone();
                view.name = spec.name.clone();
                view.description = spec.description.clone();
                view.instance_type = type_keyword(spec.instance_type);
                view.image = spec.image.clone();
                view.profiles = spec.profiles.clone();
                view.config_pairs = spec.config.clone().into_iter().collect();
                view.device_list = devices(&spec.devices);
                view.stamp = stamp(&Stamped {
                    description: &spec.description,
                    profiles: Some(&spec.profiles),
                    config: &spec.config,
                    devices: &spec.devices,
                });
                types.insert(format!("{}/{}", spec.project, spec.name), type_keyword(spec.instance_type));
                instances.push(StepView {
                    project: spec.project.clone(),
                    name: spec.name.clone(),
                    instance_type: type_keyword(spec.instance_type),
                    origin: origin.clone(),
                    ..StepView::default()
                });
            }
            Action::StartInstance(target) => {
                view.action = "start_instance";
                view.title = format!("instance {}/{}", target.project, target.name);
                view.project = target.project.clone();
                view.name = target.name.clone();
                view.instance_type = type_keyword(target.instance_type);
            }
            // Waits are one loop at the end of the script (ak_wait_all) over the
            // instances this run started; their retries and delays are plan.waits.
            Action::WaitRunning(_) | Action::WaitAgent(_) => continue,
        }
        steps.push(view);
    }
    let image_instances = plan
        .images
        .iter()
        .map(|image| {
            image.instances.iter().map(|key| format!("{key}:{}", types.get(key).copied().unwrap_or("lxc"))).collect()
        })
        .collect();
    View { plan, projects, image_instances, instances, steps }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_is_one_bash_word() {
        assert_eq!(shell_quote("plain-word_1.2").unwrap_or_default(), "plain-word_1.2");
        assert_eq!(shell_quote("").unwrap_or_default(), "''");
        assert_eq!(shell_quote("a b").unwrap_or_default(), "'a b'");
        assert!(shell_quote("nul\0byte").is_err());
    }
}
