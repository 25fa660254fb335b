//! Every stack of `tests/fixtures/compose-wild` (Compose files in the shapes
//! homelab collections, PaaS template catalogues and the Compose docs use)
//! loads as its own repo, or is refused only for reasons berth means to
//! refuse, each listed below with the stack that has it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use super::test_support::copy_dir;
use super::*;

/// Why berth rightly refuses a stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// `build` without `image`: berth deploys images, it never builds.
    BuildWithoutImage,
    /// A bind mount of a path in the repo (`./config:/config`), or
    /// Files of the stack's repo (`configs:`, `./` bind mounts) that the
    /// corpus, which keeps Compose files only, does not hold: berth would
    /// deliver them, and the error must name the missing path.
    RepoFiles,
    /// An anonymous volume (`- /usr/src/app/node_modules`): its data would
    /// be lost at every replace (Compose carries it over; berth cannot).
    AnonymousVolume,
}

impl Refusal {
    fn matches(self, d: &Diagnostic) -> bool {
        let help = d.help.as_deref().unwrap_or("");
        match self {
            Refusal::BuildWithoutImage => {
                d.message.contains("`build`")
                    && d.message.contains("no `image`")
                    && help.contains("build and push")
            }
            Refusal::RepoFiles => {
                d.message.contains("does not exist") && help.contains("commit the file")
            }
            Refusal::AnonymousVolume => {
                d.message.contains("anonymous volume") && help.contains("name it")
            }
        }
    }
}

use Refusal::{AnonymousVolume as Anonymous, BuildWithoutImage as Build, RepoFiles};

/// The stacks berth refuses, and the only reasons it may give.
const EXPECTED_REFUSALS: &[(&str, &[Refusal])] = &[
    ("arr", &[RepoFiles]),
    ("docs-flask-redis", &[Build]),
    ("docs-nginx-golang", &[Build]),
    ("docs-react-express-mongo", &[Build, RepoFiles, Anonymous]),
    ("gitea", &[RepoFiles]),
    ("mosquitto", &[RepoFiles]),
    ("npm", &[RepoFiles]),
    ("paperless", &[RepoFiles]),
];

/// Stacks still refused for keys berth cannot pass to the engine yet (the
/// engine mapping has no field for them). They count against the
/// acceptance ratio; every error must still be located and say what to do.
const NOT_YET_HONOURED: &[(&str, &str)] =
    &[("docs-spec-example", "`configs:`, `external` secrets")];

const INVENTORY: &str = "\
project: wild
hosts:
  - {name: h1, address: 10.0.0.1}
  - {name: h2, address: 10.0.0.2}
  - {name: h3, address: 10.0.0.3}
";

/// The runner's environment, fixed so that runs are reproducible: what a
/// shell on a homelab box or a CI runner has.
fn environment() -> BTreeMap<String, String> {
    [
        ("HOME", "/home/runner"),
        ("TZ", "Etc/UTC"),
        ("USER", "runner"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/compose-wild")
}

fn stack_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(corpus())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Loads the stack `name` as the only stack of a fresh repo.
fn load_stack(name: &str) -> Result<Loaded, SpecError> {
    let repo = tempfile::tempdir().unwrap();
    std::fs::write(repo.path().join("berth.yaml"), INVENTORY).unwrap();
    copy_dir(&corpus().join(name), &repo.path().join("stacks").join(name));
    let options = LoadOptions {
        profiles: Vec::new(),
        environment: Some(environment()),
    };
    load_with(repo.path(), &options)
}

#[test]
fn the_wild_compose_corpus_validates_or_is_rightly_refused() {
    let names = stack_names();
    assert!(names.len() >= 50, "corpus too small: {}", names.len());
    for (name, _) in EXPECTED_REFUSALS {
        assert!(names.iter().any(|n| n == name), "no stack `{name}`");
    }
    let mut failures = Vec::new();
    let (mut loaded_count, mut refused_count) = (0, 0);
    for name in &names {
        if let Some((_, why)) = NOT_YET_HONOURED.iter().find(|(n, _)| n == name) {
            match load_stack(name) {
                Ok(_) => failures.push(format!(
                    "{name}: loads, but the test expects it refused for {why}: update the table"
                )),
                Err(e) => {
                    for d in e.diagnostics.iter().filter(|d| d.help.is_none()) {
                        failures.push(format!("{name}: no help: {}: {}", d.location, d.message));
                    }
                    println!("{name}: refused ({why}):\n{e}\n");
                }
            }
            continue;
        }
        let expected = EXPECTED_REFUSALS
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, reasons)| *reasons);
        match (load_stack(name), expected) {
            (Ok(loaded), None) => {
                assert!(!loaded.project.stacks[0].services.is_empty(), "{name}");
                loaded_count += 1;
            }
            (Ok(_), Some(reasons)) => failures.push(format!(
                "{name}: loads, but the test expects it refused for {reasons:?}: update the table"
            )),
            (Err(e), None) => failures.push(format!("{name}:\n{e}")),
            (Err(e), Some(reasons)) => {
                let wrong: Vec<String> = e
                    .diagnostics
                    .iter()
                    .filter(|d| !reasons.iter().any(|r| r.matches(d)))
                    .map(|d| {
                        let mut line = format!("{}: {}", d.location, d.message);
                        if let Some(help) = &d.help {
                            line.push_str(&format!("\n  help: {help}"));
                        }
                        line
                    })
                    .collect();
                for reason in reasons.iter() {
                    if !e.diagnostics.iter().any(|d| reason.matches(d)) {
                        failures.push(format!("{name}: expected a {reason:?} refusal:\n{e}"));
                    }
                }
                if wrong.is_empty() {
                    refused_count += 1;
                } else {
                    failures.push(format!(
                        "{name}: refused for other reasons than {reasons:?}:\n{}",
                        wrong.join("\n")
                    ));
                }
            }
        }
    }
    let total = names.len();
    println!(
        "compose-wild: {loaded_count} of {total} load, {refused_count} rightly refused, \
         acceptance {:.1}%",
        100.0 * (loaded_count + refused_count) as f64 / total as f64
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(
        (loaded_count + refused_count) * 10 >= total * 9,
        "acceptance below 90%"
    );
}

/// Every stack's load returns (no panic, no hang), whatever it finds.
#[test]
fn no_wild_compose_file_panics_or_hangs() {
    for name in stack_names() {
        let (done, wait) = mpsc::channel();
        let thread_name = name.clone();
        std::thread::spawn(move || {
            let outcome = std::panic::catch_unwind(|| load_stack(&thread_name).is_ok());
            let _ = done.send(outcome.is_ok());
        });
        match wait.recv_timeout(Duration::from_secs(30)) {
            Ok(returned) => assert!(returned, "{name}: load panicked"),
            Err(_) => panic!("{name}: load did not return within 30 s"),
        }
    }
}

/// Loads a repo of the test inventory and one stack, `web`, of `compose`,
/// with the test environment.
fn load_web(compose: &str) -> Result<Loaded, SpecError> {
    let repo = tempfile::tempdir().unwrap();
    std::fs::write(repo.path().join("berth.yaml"), INVENTORY).unwrap();
    std::fs::create_dir_all(repo.path().join("stacks/web")).unwrap();
    std::fs::write(repo.path().join("stacks/web/compose.yaml"), compose).unwrap();
    let options = LoadOptions {
        profiles: Vec::new(),
        environment: Some(environment()),
    };
    load_with(repo.path(), &options)
}

/// The warnings a stack loads with, one `file:line:col: message` and its
/// help per entry.
fn warnings_of(compose: &str) -> String {
    let loaded = load_web(compose).unwrap_or_else(|e| panic!("{e}"));
    SpecError::from(loaded.warnings).to_string()
}

#[test]
fn swarm_only_and_refreshing_keys_load_with_a_warning_saying_what_berth_does() {
    let compose = r#"name: shop
services:
  api:
    image: nginx
    restart: unless-stopped
    pull_policy: always
    deploy:
      restart_policy: {condition: on-failure, delay: 5s, max_attempts: 3, window: 120s}
      resources:
        limits: {cpus: '0.50', memory: 512M}
        reservations: {cpus: '0.25', memory: 128M}
  db:
    image: postgres
    pull_policy: daily
  cache:
    image: redis
    pull_policy: never
"#;
    insta::assert_snapshot!(warnings_of(compose));
    let project = load_web(compose).unwrap().project;
    let services = &project.stacks[0].services;
    let get = |name: &str| services.iter().find(|s| s.name == name).unwrap();
    // `deploy.restart_policy` wins over `restart`, as with `docker compose`.
    assert_eq!(get("api").container.restart, "on-failure:3");
    assert_eq!(get("api").pull_policy, PullPolicy::Always);
    assert_eq!(
        get("db").pull_policy,
        PullPolicy::Every(Duration::from_secs(24 * 3600))
    );
    assert_eq!(get("cache").pull_policy, PullPolicy::Never);
}

#[test]
fn a_variable_named_alone_and_set_nowhere_is_left_out_with_a_warning() {
    let compose = "services:\n  api:\n    image: nginx\n    environment:\n      - BERTH_TEST_SET_NOWHERE\n      - TZ\n      - A=1\n";
    insta::assert_snapshot!(warnings_of(compose), @r"
    stacks/web/compose.yaml:5:9: variable `BERTH_TEST_SET_NOWHERE` of service `api` is set nowhere: the container does not get it
      help: set `BERTH_TEST_SET_NOWHERE` in the stack's `.env`, in `variables:` of `berth.yaml` or in berth's environment, or write `BERTH_TEST_SET_NOWHERE=<value>` (use `secrets` for credentials)
    ");
    let project = load_web(compose).unwrap().project;
    let env = &project.stacks[0].services[0].container.environment;
    assert_eq!(
        env.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>(),
        ["A=1", "TZ=Etc/UTC"]
    );
    let repo = tempfile::tempdir().unwrap();
    std::fs::write(
        repo.path().join("berth.yaml"),
        format!("settings: {{strict_variables: true}}\n{INVENTORY}"),
    )
    .unwrap();
    std::fs::create_dir_all(repo.path().join("stacks/web")).unwrap();
    std::fs::write(repo.path().join("stacks/web/compose.yaml"), compose).unwrap();
    let options = LoadOptions {
        profiles: Vec::new(),
        environment: Some(environment()),
    };
    let error = load_with(repo.path(), &options).unwrap_err();
    insta::assert_snapshot!(error.to_string(), @r"
    stacks/web/compose.yaml:5:9: variable `BERTH_TEST_SET_NOWHERE` of service `api` has no value
      help: set `BERTH_TEST_SET_NOWHERE` in the stack's `.env`, in `variables:` of `berth.yaml` or in berth's environment, or write `BERTH_TEST_SET_NOWHERE=<value>` (use `secrets` for credentials) (`settings.strict_variables` is on)
    ");
}

#[test]
fn dev_only_keys_and_macos_mount_flags_warn_and_unsupported_mount_options_are_located_errors() {
    let compose = r#"services:
  web:
    image: nginx
    develop: {watch: [{action: sync, path: ./web, target: /src}]}
    attach: true
    x-tool: {a: 1}
    ports: [{name: web, target: 80, published: "8080", app_protocol: http}]
    volumes:
      - /srv/web:/usr/share/nginx/html:ro,cached
      - type: bind
        source: /srv/logs
        target: /logs
        bind: {create_host_path: true}
"#;
    insta::assert_snapshot!(warnings_of(compose), @r"
    stacks/web/compose.yaml:4:5: `develop` of service `web` has no effect on a deploy
      help: it steers `docker compose watch` on a developer's machine; berth deploys the image as built: keep it for local work, it changes nothing here
    stacks/web/compose.yaml:5:5: `attach: true` of service `web` has no effect
      help: berth streams no container logs while deploying: read them with `docker logs` on the host
    stacks/web/compose.yaml:9:9: service `web` volume `/srv/web:/usr/share/nginx/html:ro,cached`: option `cached` has no effect on a Linux host
      help: it tunes file sharing of Docker Desktop on macOS: remove it to silence this warning
    ");
    let repo = tempfile::tempdir().unwrap();
    std::fs::write(repo.path().join("berth.yaml"), INVENTORY).unwrap();
    std::fs::create_dir_all(repo.path().join("stacks/web")).unwrap();
    std::fs::write(
        repo.path().join("stacks/web/compose.yaml"),
        "services:\n  web:\n    image: nginx\n    x-bert: {}\n    volumes:\n      - data:/srv:rslave\n      - /:/host:ro,rslave,shared\n      - type: bind\n        source: /mnt\n        target: /mnt\n        bind: {propagation: rshard, selinux: z, create_host_path: false}\n      - ~/data:/data\nvolumes:\n  data: {}\n",
    )
    .unwrap();
    let options = LoadOptions {
        profiles: Vec::new(),
        environment: Some(environment()),
    };
    let error = load_with(repo.path(), &options).unwrap_err();
    insta::assert_snapshot!(error.to_string());
}

/// Shapes found at the edges of real files (empty values from unset
/// variables, nulls, odd scalars): the load returns, error or not.
#[test]
fn odd_values_never_panic() {
    let cases = [
        "services: {}\n",
        "services:\n  web:\n",
        "services:\n  web:\n    image: nginx\n    ports: [\":80\", \"80:\", \"::80\", \"[::]::80\", \"a:b\", \"1-2:3\", \"\"]\n",
        "services:\n  web:\n    image: nginx\n    volumes: [\"\", \":\", \"::\", \"/a::/b\", \"x:/y:ro:rw\"]\n",
        "services:\n  web:\n    image: nginx\n    environment: ~\n    labels: []\n    command: \"\"\n    healthcheck: {}\n    deploy: {}\n    logging: {}\n",
        "services:\n  web:\n    image: ${REGISTRY}/app:${TAG}\n    mem_limit: ${MEM}\n    cpus: ${CPUS}\n    restart: ${RESTART}\n    ports: [\"${PORT}:80\"]\n",
        "services:\n  web:\n    image: nginx\n    tmpfs: \"\"\n    ulimits: {nofile: {}}\n    stop_grace_period: \"\"\n    shm_size: \"\"\n",
        "services:\n  web:\n    image: nginx\n    depends_on: {db: {}}\n  db: {image: postgres, healthcheck: {test: []}}\n",
        "x-a: &a {image: nginx}\nservices:\n  web:\n    <<: [*a, *a]\n    networks: {default: ~}\n",
        "services:\n  web:\n    image: \"nginx\\u0000\"\n    hostname: \"é\"\n    extra_hosts: [\"\", \"a\", \"a:\"]\n",
        "services:\n  web:\n    extends: web\n    image: nginx\n",
        "services:\n  web:\n    image: nginx\n    env_file: [\"\"]\n",
        "include: [\"\"]\nservices:\n  web: {image: nginx}\n",
        "name: \"\"\nversion: 3\nservices:\n  web: {image: nginx, pull_policy: every_, restart: \"on-failure:\"}\n",
    ];
    for (i, compose) in cases.into_iter().enumerate() {
        let outcome = std::panic::catch_unwind(|| load_web(compose).is_ok());
        assert!(outcome.is_ok(), "case {i} panicked:\n{compose}");
    }
}

#[test]
fn scale_is_deploy_replicas() {
    let compose = "services:\n  a: {image: nginx, scale: 3}\n  b: {image: nginx, scale: 2, deploy: {replicas: 2}}\n  c: {image: nginx, scale: 2, deploy: {replicas: 3}}\n  d: {image: nginx, scale: 2, deploy: {mode: global}}\n";
    let error = load_web(compose).unwrap_err();
    insta::assert_snapshot!(error.to_string(), @r"
    stacks/web/compose.yaml:4:28: service `c` sets `scale: 2` and `deploy.replicas: 3`
      help: keep one of them (`deploy.replicas` is the current spelling)
    stacks/web/compose.yaml:5:28: service `d` sets `scale` with `deploy.mode: global`
      help: a global service runs one replica on every eligible host: remove `scale`
    ");
    let compose = "services:\n  a: {image: nginx, scale: 3}\n  b: {image: nginx, scale: 2, deploy: {replicas: 2}}\n";
    let project = load_web(compose).unwrap().project;
    let replicas: Vec<u32> = project.stacks[0]
        .services
        .iter()
        .map(|s| s.deploy.replicas)
        .collect();
    assert_eq!(replicas, [3, 2]);
}

/// Propagation and SELinux relabelling reach the model from both syntaxes;
/// a named volume may be relabelled too, as with `docker compose`.
#[test]
fn bind_propagation_and_selinux_relabel_load_from_both_syntaxes() {
    let compose = "services:\n  web:\n    image: nginx\n    volumes:\n      - /:/host:ro,rslave\n      - /srv/a:/a:Z\n      - type: bind\n        source: /srv/b\n        target: /b\n        bind: {propagation: rshared, selinux: z}\n      - data:/data:z\nvolumes:\n  data: {}\n";
    let project = load_web(compose).unwrap_or_else(|e| panic!("{e}")).project;
    let mounts: Vec<(&str, bool, Option<&str>, Option<&str>)> = project.stacks[0].services[0]
        .container
        .mounts
        .iter()
        .map(|m| {
            (
                m.target.as_str(),
                m.read_only,
                m.propagation.as_deref(),
                m.selinux.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        mounts,
        [
            ("/data", false, None, Some("z")),
            ("/host", true, Some("rslave"), None),
            ("/a", false, None, Some("Z")),
            ("/b", false, Some("rshared"), Some("z")),
        ]
    );
}

/// Network `driver_opts`, `attachable`, `enable_ipv6`, `ipam` and volume
/// `driver_opts` reach the model as written.
#[test]
fn network_ipam_and_driver_opts_and_volume_driver_opts_load() {
    use crate::spec::{IpamPool, IpamSpec};
    let repo = tempfile::tempdir().unwrap();
    std::fs::write(repo.path().join("berth.yaml"), INVENTORY).unwrap();
    std::fs::create_dir_all(repo.path().join("stacks/web")).unwrap();
    let compose = r#"services:
  web:
    image: nginx
    networks: [front]
    volumes: [nfs:/srv]
networks:
  front:
    driver: bridge
    attachable: false
    enable_ipv6: true
    driver_opts: {com.docker.network.bridge.name: br-front, com.docker.network.driver.mtu: 1400}
    ipam:
      driver: default
      options: {foo: bar}
      config:
        - subnet: 172.28.0.0/16
          ip_range: 172.28.5.0/24
          gateway: 172.28.0.1
          aux_addresses: {router: 172.28.1.5}
volumes:
  nfs:
    driver: local
    driver_opts: {type: nfs, o: "addr=10.40.0.199,nolock,soft,rw", device: ":/docker/example"}
"#;
    std::fs::write(repo.path().join("stacks/web/compose.yaml"), compose).unwrap();
    let options = LoadOptions {
        profiles: Vec::new(),
        environment: Some(environment()),
    };
    let project = load_with(repo.path(), &options)
        .unwrap_or_else(|e| panic!("{e}"))
        .project;
    let stack = &project.stacks[0];
    let front = &stack.networks["front"];
    assert_eq!(front.attachable, Some(false));
    assert_eq!(front.enable_ipv6, Some(true));
    assert_eq!(
        front.driver_opts,
        BTreeMap::from([
            (
                "com.docker.network.bridge.name".to_string(),
                "br-front".to_string()
            ),
            (
                "com.docker.network.driver.mtu".to_string(),
                "1400".to_string()
            ),
        ])
    );
    assert_eq!(
        front.ipam,
        Some(IpamSpec {
            driver: Some("default".into()),
            config: vec![IpamPool {
                subnet: Some("172.28.0.0/16".into()),
                ip_range: Some("172.28.5.0/24".into()),
                gateway: Some("172.28.0.1".into()),
                aux_addresses: BTreeMap::from([("router".to_string(), "172.28.1.5".to_string())]),
            }],
            options: BTreeMap::from([("foo".to_string(), "bar".to_string())]),
        })
    );
    assert_eq!(
        stack.volumes["nfs"].driver_opts,
        BTreeMap::from([
            ("device".to_string(), ":/docker/example".to_string()),
            (
                "o".to_string(),
                "addr=10.40.0.199,nolock,soft,rw".to_string()
            ),
            ("type".to_string(), "nfs".to_string()),
        ])
    );

    // A typo in `ipam` is located, and an external network takes none of it.
    let compose = "services:\n  web: {image: nginx, networks: [a, b]}\nnetworks:\n  a:\n    ipam: {config: [{subnet: 10.0.0.0/8, gatway: 10.0.0.1}]}\n  b:\n    external: true\n    driver_opts: {x: y}\n";
    let error = load_web(compose).unwrap_err();
    insta::assert_snapshot!(error.to_string(), @r"
    stacks/web/compose.yaml:5:42: unknown key `gatway` in a pool of `config` of `ipam` of network `a`
      help: did you mean `gateway`?
    stacks/web/compose.yaml:8:5: network `b` is `external` but sets `driver_opts`
      help: an external resource is created outside berth; remove the other keys
    ");
}

/// GPU requests of `deploy.resources.reservations.devices` and of `gpus:`
/// reach the model; `count: all` and a request naming no count are all
/// devices.
#[test]
fn gpu_device_requests_load() {
    use crate::spec::DeviceRequestSpec;
    let compose = "services:\n  ai:\n    image: ollama/ollama\n    deploy:\n      resources:\n        reservations:\n          devices:\n            - {driver: nvidia, count: all, capabilities: [gpu]}\n            - {driver: nvidia, count: 2, capabilities: [gpu, utility]}\n            - {device_ids: ['0', '3'], capabilities: [gpu], options: {virtualization: 'false'}}\n            - {capabilities: [gpu]}\n  gpu:\n    image: ollama/ollama\n    gpus: all\n  two:\n    image: ollama/ollama\n    gpus: [{driver: nvidia, count: 2}]\n";
    let project = load_web(compose).unwrap_or_else(|e| panic!("{e}")).project;
    let gpu =
        |driver: Option<&str>, count: Option<i64>, ids: &[&str], caps: &[&str]| DeviceRequestSpec {
            driver: driver.map(str::to_string),
            count,
            device_ids: ids.iter().map(|s| s.to_string()).collect(),
            capabilities: caps.iter().map(|s| s.to_string()).collect(),
            options: BTreeMap::new(),
        };
    let mut with_options = gpu(None, None, &["0", "3"], &["gpu"]);
    with_options.options = BTreeMap::from([("virtualization".to_string(), "false".to_string())]);
    assert_eq!(
        project.stacks[0].services[0]
            .container
            .resources
            .device_requests,
        [
            gpu(Some("nvidia"), Some(-1), &[], &["gpu"]),
            gpu(Some("nvidia"), Some(2), &[], &["gpu", "utility"]),
            with_options,
            gpu(None, Some(-1), &[], &["gpu"]),
        ]
    );
    let services = &project.stacks[0].services;
    assert_eq!(
        services[1].container.resources.device_requests,
        [gpu(None, Some(-1), &[], &["gpu"])]
    );
    assert_eq!(
        services[2].container.resources.device_requests,
        [gpu(Some("nvidia"), Some(2), &[], &["gpu"])]
    );
    let compose = "services:\n  ai:\n    image: ollama/ollama\n    deploy:\n      resources:\n        reservations:\n          devices:\n            - {driver: nvidia, count: 1, device_ids: ['0'], capabilities: [gpu]}\n            - {driver: nvidia, count: some}\n  gpu:\n    image: ollama/ollama\n    gpus: 2\n";
    let error = load_web(compose).unwrap_err();
    insta::assert_snapshot!(error.to_string(), @r"
    stacks/web/compose.yaml:8:39: a device of `devices` of `deploy.resources.reservations` of service `ai` sets both `count` and `device_ids`
      help: keep one of them: `device_ids` names the devices, `count` takes any that many
    stacks/web/compose.yaml:9:15: a device of `devices` of `deploy.resources.reservations` of service `ai` has no `capabilities`
      help: say what the device is for, as Compose requires: `capabilities: [gpu]` for a GPU
    stacks/web/compose.yaml:9:39: `count` of a device of `devices` of `deploy.resources.reservations` of service `ai` must be a number of devices or `all`, found `some`
      help: write `count: all` for every device, `count: 1` for one
    stacks/web/compose.yaml:12:11: `gpus` of service `gpu` must be `all` or a list of requests, found `2`
      help: write `gpus: all`, or `gpus: [{driver: nvidia, count: 1}]`
    ");
}
