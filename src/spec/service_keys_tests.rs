//! The Compose service keys that map onto engine settings, read through
//! `spec::load` on small repos: the model they give, and each mistake with
//! its place and help.

use std::collections::BTreeMap;

use crate::spec::*;

const INVENTORY: &str = "\
project: shop
hosts:
  - name: edge-1
    address: 10.77.0.11
    labels: {role: web}
  - name: edge-2
    address: 10.77.0.12
    labels: {role: web}
";

fn web(compose: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let stack = dir.path().join("stacks/web");
    std::fs::create_dir_all(&stack).unwrap();
    std::fs::write(dir.path().join("berth.yaml"), INVENTORY).unwrap();
    std::fs::write(stack.join("compose.yaml"), compose).unwrap();
    dir
}

fn stack(compose: &str) -> Stack {
    let dir = web(compose);
    match load(dir.path()) {
        Ok(mut project) => project.stacks.remove(0),
        Err(e) => panic!("expected the stack to load:\n{e}"),
    }
}

fn service<'a>(stack: &'a Stack, name: &str) -> &'a Service {
    stack.services.iter().find(|s| s.name == name).unwrap()
}

/// Every problem as the user sees it, help lines included.
fn errors(compose: &str) -> String {
    let dir = web(compose);
    match load(dir.path()) {
        Ok(_) => panic!("expected the stack to be refused"),
        Err(e) => e.to_string(),
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn map(items: &[(&str, &str)]) -> BTreeMap<String, String> {
    items
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn engine_keys_read_to_the_model() {
    let stack = stack(
        r#"services:
  api:
    image: reg.example/api:1
    expose: [8080, "53/udp", "9000-9002"]
    hostname: api
    domainname: example.com
    init: true
    stop_signal: SIGQUIT
    extra_hosts:
      - "db.local:10.0.0.5"
      - "gw=host-gateway"
      - "v6:[::1]"
    dns: 1.1.1.1
    dns_search: [example.com, corp.example]
    dns_opt: [use-vc, "ndots:2"]
    sysctls:
      - net.core.somaxconn=1024
    devices: ["/dev/ttyUSB0", "/dev/sda:/dev/xvda:r"]
    privileged: true
    shm_size: 256m
    platform: linux/AMD64
    runtime: runc
    stdin_open: true
    tty: true
    working_dir: /srv
    ipc: shareable
    pid: host
    group_add: [video, "44"]
    cgroup_parent: /berth
    oom_score_adj: -500
    pids_limit: 100
    storage_opt: {size: 10G}
    userns_mode: host
    mem_limit: 1g
    mem_reservation: 512m
    memswap_limit: 2g
    cpus: 1.5
    cpu_shares: 512
    cpuset: "0-1"
    annotations: {com.example.note: hi}
    labels: [a=1]
    deploy:
      labels: {b: "2"}
      restart_policy: {condition: on-failure, max_attempts: 3}
    healthcheck:
      test: [CMD, "true"]
      start_interval: 2s
"#,
    );
    let c = &service(&stack, "api").container;
    assert_eq!(
        c.expose,
        strings(&["53/udp", "8080/tcp", "9000/tcp", "9001/tcp", "9002/tcp"])
    );
    assert_eq!(c.hostname.as_deref(), Some("api"));
    assert_eq!(c.domainname.as_deref(), Some("example.com"));
    assert_eq!(c.init, Some(true));
    assert_eq!(c.stop_signal.as_deref(), Some("SIGQUIT"));
    assert_eq!(
        c.extra_hosts,
        strings(&["db.local:10.0.0.5", "gw:host-gateway", "v6:::1"])
    );
    assert_eq!(c.dns, strings(&["1.1.1.1"]));
    assert_eq!(c.dns_search, strings(&["example.com", "corp.example"]));
    assert_eq!(c.dns_opt, strings(&["use-vc", "ndots:2"]));
    assert_eq!(c.sysctls, map(&[("net.core.somaxconn", "1024")]));
    assert_eq!(
        c.devices,
        vec![
            DeviceSpec {
                host: "/dev/sda".into(),
                container: "/dev/xvda".into(),
                permissions: "r".into()
            },
            DeviceSpec {
                host: "/dev/ttyUSB0".into(),
                container: "/dev/ttyUSB0".into(),
                permissions: "rwm".into()
            },
        ]
    );
    assert!(c.privileged && c.stdin_open && c.tty);
    assert_eq!(c.shm_size, Some(256 << 20));
    assert_eq!(c.platform.as_deref(), Some("linux/amd64"));
    assert_eq!(c.runtime.as_deref(), Some("runc"));
    assert_eq!(c.working_dir.as_deref(), Some("/srv"));
    assert_eq!(c.ipc.as_deref(), Some("shareable"));
    assert_eq!(c.pid.as_deref(), Some("host"));
    assert_eq!(c.group_add, strings(&["44", "video"]));
    assert_eq!(c.cgroup_parent.as_deref(), Some("/berth"));
    assert_eq!(c.oom_score_adj, Some(-500));
    assert_eq!(c.resources.pids_limit, Some(100));
    assert_eq!(c.storage_opt, map(&[("size", "10G")]));
    assert_eq!(c.userns_mode.as_deref(), Some("host"));
    assert_eq!(c.resources.memory, Some(1 << 30));
    assert_eq!(c.resources.memory_reservation, Some(512 << 20));
    assert_eq!(c.memswap_limit, Some(2 << 30));
    assert_eq!(c.resources.nano_cpus, Some(1_500_000_000));
    assert_eq!(c.cpu_shares, Some(512));
    assert_eq!(c.cpuset.as_deref(), Some("0-1"));
    assert_eq!(c.annotations, map(&[("com.example.note", "hi")]));
    assert_eq!(c.labels, map(&[("a", "1"), ("b", "2")]));
    assert_eq!(c.restart, "on-failure:3");
    assert_eq!(c.healthcheck.as_ref().unwrap().start_interval_ms, 2000);
}

#[test]
fn extra_hosts_map_form_and_memswap_unlimited() {
    let stack = stack(
        "services:\n  api:\n    image: nginx\n    extra_hosts:\n      db: 10.0.0.5\n      multi: [10.0.0.6, \"::1\"]\n    memswap_limit: -1\n    sysctls: {net.ipv4.ip_forward: 1}\n",
    );
    let c = &service(&stack, "api").container;
    assert_eq!(
        c.extra_hosts,
        strings(&["db:10.0.0.5", "multi:10.0.0.6", "multi:::1"])
    );
    assert_eq!(c.memswap_limit, Some(-1));
    assert_eq!(c.sysctls, map(&[("net.ipv4.ip_forward", "1")]));
}

#[test]
fn restart_policy_conditions_map_like_compose() {
    let cases = [
        ("{}", "always"),
        ("{condition: any}", "always"),
        ("{condition: none}", "no"),
        ("{condition: on-failure}", "on-failure"),
        ("{condition: on-failure, max_attempts: 0}", "on-failure"),
        ("{condition: on-failure, max_attempts: 5}", "on-failure:5"),
    ];
    for (policy, restart) in cases {
        let stack = stack(&format!(
            "services:\n  api:\n    image: nginx\n    deploy:\n      restart_policy: {policy}\n"
        ));
        assert_eq!(
            service(&stack, "api").container.restart,
            restart,
            "{policy}"
        );
    }
    // The same policy twice is no conflict.
    let stack = stack(
        "services:\n  api:\n    image: nginx\n    restart: always\n    deploy:\n      restart_policy: {condition: any}\n",
    );
    assert_eq!(service(&stack, "api").container.restart, "always");
}

#[test]
fn container_name_build_and_pull_policy() {
    let stack = stack(
        "services:\n  api:\n    image: nginx\n    build: .\n    container_name: shop-api\n    pull_policy: if_not_present\n  db:\n    image: postgres\n    pull_policy: missing\n",
    );
    let api = service(&stack, "api");
    assert_eq!(api.container_name.as_deref(), Some("shop-api"));
    assert_eq!(api.pull_policy, PullPolicy::Missing);
    assert_eq!(
        api.build_ignored.as_ref().map(|l| (l.line, l.column)),
        Some((4, 5))
    );
    let db = service(&stack, "db");
    assert_eq!(db.pull_policy, PullPolicy::Missing);
    assert!(db.build_ignored.is_none());
}

/// The refresh policies as Compose reads them: `every_` takes Go units and
/// also days and weeks (`every_2d`, `every_1w`), as the Compose schema does.
#[test]
fn refresh_pull_policies_count_hours_days_and_weeks() {
    let stack = stack(
        "services:\n  a:\n    image: a\n    pull_policy: every_12h\n  b:\n    image: b\n    pull_policy: every_2d\n  c:\n    image: c\n    pull_policy: every_1w\n  d:\n    image: d\n    pull_policy: weekly\n  e:\n    image: e\n    pull_policy: daily\n",
    );
    let hours = |h: u64| PullPolicy::Every(std::time::Duration::from_secs(h * 3600));
    assert_eq!(service(&stack, "a").pull_policy, hours(12));
    assert_eq!(service(&stack, "b").pull_policy, hours(48));
    assert_eq!(service(&stack, "c").pull_policy, hours(168));
    assert_eq!(service(&stack, "d").pull_policy, hours(168));
    assert_eq!(service(&stack, "e").pull_policy, hours(24));
}

#[test]
fn network_mode_service_shares_the_peers_container_and_follows_it() {
    let stack = stack(
        "services:\n  vpn:\n    image: vpn\n    container_name: vpn\n  app:\n    image: app\n    network_mode: service:vpn\n  side:\n    image: side\n    network_mode: service:db\n  db:\n    image: db\n  host:\n    image: h\n    network_mode: host\n",
    );
    let app = service(&stack, "app");
    assert_eq!(app.container.network_mode.as_deref(), Some("container:vpn"));
    assert!(app.container.networks.is_empty());
    assert_eq!(app.network_peer.as_deref(), Some("vpn"));
    assert!(app.follows.contains("vpn"));
    assert_eq!(
        app.depends_on.get("vpn"),
        Some(&DependsCondition::ServiceStarted)
    );
    let side = service(&stack, "side");
    assert_eq!(
        side.container.network_mode.as_deref(),
        Some("container:web-db-1")
    );
    let host = service(&stack, "host");
    assert_eq!(host.container.network_mode.as_deref(), Some("host"));
    assert!(host.container.networks.is_empty());
}

#[test]
fn links_become_aliases_of_the_linked_service() {
    let stack = stack(
        "services:\n  api:\n    image: api\n    links: [db:database, cache]\n  db:\n    image: db\n  cache:\n    image: redis\n",
    );
    let db = service(&stack, "db");
    assert_eq!(
        db.container.networks.get("web_default"),
        Some(&strings(&["database", "db"]))
    );
    let api = service(&stack, "api");
    assert_eq!(api.depends_on.keys().collect::<Vec<_>>(), ["cache", "db"]);
}

#[test]
fn depends_on_long_form_required_and_restart() {
    let stack = stack(
        "services:\n  api:\n    image: api\n    depends_on:\n      db: {condition: service_healthy, restart: true}\n      metrics: {condition: service_started, required: false}\n  db:\n    image: db\n",
    );
    let api = service(&stack, "api");
    assert_eq!(
        api.depends_on,
        BTreeMap::from([("db".to_string(), DependsCondition::ServiceHealthy)])
    );
    assert!(api.follows.contains("db"));
}

#[test]
fn specs_without_the_new_keys_serialise_as_before() {
    // The canonical JSON (and so the hash every deployed container carries)
    // of a spec that sets none of the new keys must not change with them.
    let spec = ContainerSpec {
        image: "nginx:1".into(),
        restart: RestartPolicy::UnlessStopped,
        networks: BTreeMap::from([("web_default".to_string(), strings(&["api"]))]),
        healthcheck: Some(HealthcheckSpec {
            test: strings(&["CMD", "true"]),
            interval_ms: 1000,
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(
        crate::placement::canonical_json(&spec),
        r#"{"image":"nginx:1","networks":{"web_default":["api"]},"healthcheck":{"test":["CMD","true"],"interval_ms":1000,"timeout_ms":0,"retries":0,"start_period_ms":0},"restart":"unless-stopped"}"#
    );
    let loaded = stack(
        "services:\n  api:\n    image: nginx:1\n    healthcheck: {test: [CMD, \"true\"], interval: 1s}\n",
    );
    assert_eq!(service(&loaded, "api").container, spec);
    // And an old label reads back to the same spec.
    let json = crate::placement::canonical_json(&spec);
    let back: ContainerSpec = serde_json::from_str(&json).unwrap();
    assert_eq!(back, spec);
}

#[test]
fn engine_key_mistakes_are_located() {
    insta::assert_snapshot!(errors(
        r#"services:
  api:
    image: nginx
    expose: [80/icmp, 0]
    extra_hosts: [nohost, "db:not-an-ip"]
    dns: [dns.example]
    sysctls: [net.core.somaxconn]
    devices: [ttyUSB0, "/dev/x:/dev/y:rwx", "nvidia.com/gpu=all"]
    oom_score_adj: 2000
    platform: linux//amd64
    ipc: service:db
    pid: private
    userns_mode: private
    cpuset: "0-a"
    stop_signal: "sig term"
    shm_size: lots
"#
    ));
}

#[test]
fn service_key_mistakes_are_located() {
    insta::assert_snapshot!(errors(
        r#"services:
  api:
    image: nginx
    container_name: x.berth-old
    pull_policy: build
    network_mode: bridge2
    restart: always
    deploy:
      labels: [a=1]
      restart_policy: {condition: on-failure, delay: 5s, window: 1m}
    labels: {a: "2"}
  worker:
    build: ./worker
  many:
    image: nginx
    container_name: many
    deploy: {replicas: 3}
  retry:
    image: nginx
    deploy:
      restart_policy: {condition: any, max_attempts: 3}
  odd:
    image: nginx
    pull_policy: every_day
  fresh:
    image: nginx
    pull_policy: always
  hourly:
    image: nginx
    pull_policy: every_1h
  offline:
    image: nginx
    pull_policy: never
"#
    ));
}

#[test]
fn network_mode_and_link_mistakes_are_located() {
    insta::assert_snapshot!(errors(
        r#"services:
  app:
    image: app
    network_mode: service:vpn
    ports: ["80:80"]
    hostname: app
    dns: [1.1.1.1]
    networks: [default]
  vpn:
    image: vpn
    deploy: {replicas: 2}
  side:
    image: side
    network_mode: service:nope
  chain:
    image: c
    network_mode: service:app
  hosted:
    image: h
    network_mode: host
    ports: ["81:81"]
    links: [vpn]
  linker:
    image: l
    links: [ghost, "vpn:v", "linker"]
  same1:
    image: s
    container_name: same
  same2:
    image: s
    container_name: same
"#
    ));
}

#[test]
fn cdi_device_names_become_one_cdi_request() {
    let stack = stack(
        "services:\n  ml:\n    image: nginx\n    devices: [\"vendor.com/gpu=1\", /dev/fuse, nvidia.com/gpu=all]\n",
    );
    let ml = &service(&stack, "ml").container;
    assert_eq!(
        ml.devices,
        vec![DeviceSpec {
            host: "/dev/fuse".into(),
            container: "/dev/fuse".into(),
            permissions: "rwm".into(),
        }]
    );
    assert_eq!(
        ml.resources.device_requests,
        vec![DeviceRequestSpec {
            driver: Some("cdi".into()),
            device_ids: strings(&["nvidia.com/gpu=all", "vendor.com/gpu=1"]),
            ..Default::default()
        }]
    );
}

#[test]
fn fixed_addresses_on_networks_with_a_subnet() {
    let stack = stack(
        r#"services:
  proxy:
    image: nginx
    networks:
      front:
        ipv4_address: 172.28.0.10
        ipv6_address: "fd00:1:0::0010"
        aliases: [www]
      outside:
        ipv4_address: 192.168.7.7
      back:
networks:
  front:
    enable_ipv6: true
    ipam:
      config:
        - subnet: 172.28.0.0/16
          gateway: 172.28.0.1
        - subnet: fd00:1::/64
  back: {}
  outside: {external: true, name: lan}
"#,
    );
    let proxy = &service(&stack, "proxy").container;
    assert_eq!(
        proxy.addresses,
        BTreeMap::from([
            (
                "web_front".to_string(),
                NetworkAddress {
                    ipv4: Some("172.28.0.10".into()),
                    ipv6: Some("fd00:1::10".into()),
                }
            ),
            (
                "lan".to_string(),
                NetworkAddress {
                    ipv4: Some("192.168.7.7".into()),
                    ipv6: None,
                }
            ),
        ])
    );
    assert_eq!(proxy.networks["web_front"], strings(&["proxy", "www"]));
    assert_eq!(proxy.networks.len(), 3);
}

#[test]
fn fixed_address_mistakes_are_located() {
    insta::assert_snapshot!(errors(
        r#"services:
  outside:
    image: nginx
    networks:
      front: {ipv4_address: 172.29.0.10}
  gateway:
    image: nginx
    networks:
      front: {ipv4_address: 172.28.0.1}
  bare:
    image: nginx
    networks:
      back: {ipv4_address: 10.0.0.5}
      default: {ipv4_address: 10.0.1.5}
  notip:
    image: nginx
    networks:
      front: {ipv4_address: 172.28.0.0/16, ipv6_address: 172.28.0.9}
  nov6:
    image: nginx
    networks:
      front: {ipv6_address: "fd00::9"}
  many:
    image: nginx
    deploy: {replicas: 2}
    networks:
      front: {ipv4_address: 172.28.0.20}
  eager:
    image: nginx
    deploy: {update_config: {order: start-first}}
    networks:
      front: {ipv4_address: 172.28.0.21}
  spread:
    image: nginx
    deploy: {replicas: 2, placement: {max_replicas_per_node: 1}}
    networks:
      front: {ipv4_address: 172.28.0.22}
networks:
  front:
    ipam: {config: [{subnet: 172.28.0.0/16, gateway: 172.28.0.1}]}
  back: {}
"#
    ));
}

fn placed(compose: &str) -> Result<crate::placement::DesiredState, String> {
    let dir = web(compose);
    let project = load(dir.path()).map_err(|e| e.to_string())?;
    crate::placement::place(&project, &Default::default()).map_err(|problems| {
        problems
            .iter()
            .map(|d| format!("{}: {}", d.location, d.message))
            .collect::<Vec<_>>()
            .join("\n")
    })
}

fn names(state: &crate::placement::DesiredState, host: &str) -> Vec<String> {
    state.hosts[host]
        .containers
        .iter()
        .map(|c| c.name.clone())
        .collect()
}

#[test]
fn container_name_names_the_container_on_each_host() {
    let state = placed(
        "services:\n  agent:\n    image: agent\n    container_name: node-agent\n    deploy: {mode: global}\n  api:\n    image: api\n    container_name: api\n    deploy:\n      replicas: 2\n      placement: {max_replicas_per_node: 1}\n  db:\n    image: db\n",
    )
    .unwrap();
    assert_eq!(names(&state, "edge-1"), ["node-agent", "api", "web-db-1"]);
    assert_eq!(names(&state, "edge-2"), ["node-agent", "api"]);
}

#[test]
fn a_followed_service_change_changes_the_follower() {
    let compose = |vpn_tag: &str| {
        format!(
            "services:\n  vpn:\n    image: vpn:{vpn_tag}\n    deploy: {{mode: global}}\n  app:\n    image: app\n    network_mode: service:vpn\n    deploy: {{mode: global}}\n  other:\n    image: other\n    depends_on:\n      vpn: {{condition: service_started, restart: true}}\n"
        )
    };
    let app_of = |state: &crate::placement::DesiredState, service: &str| {
        state.hosts["edge-1"]
            .containers
            .iter()
            .find(|c| c.slot.service == service)
            .cloned()
            .unwrap()
    };
    let one = placed(&compose("1")).unwrap();
    let two = placed(&compose("2")).unwrap();
    let vpn_hash = app_of(&one, "vpn").spec_hash;
    let app = app_of(&one, "app");
    assert_eq!(app.spec.follows.get("vpn"), Some(&vpn_hash));
    assert_eq!(
        app.spec.network_mode.as_deref(),
        Some("container:web-vpn-1")
    );
    assert_ne!(app.spec_hash, app_of(&two, "app").spec_hash);
    assert_ne!(
        app_of(&one, "other").spec_hash,
        app_of(&two, "other").spec_hash
    );
}

#[test]
fn placement_refuses_a_missing_peer_and_a_name_taken_twice() {
    let err = placed(
        "services:\n  vpn:\n    image: vpn\n    deploy:\n      placement: {constraints: [node.hostname == edge-2]}\n  app:\n    image: app\n    network_mode: service:vpn\n    deploy:\n      placement: {constraints: [node.hostname == edge-1]}\n  db:\n    image: db\n    container_name: web-cache-1\n    deploy:\n      placement: {constraints: [node.hostname == edge-1]}\n  cache:\n    image: redis\n    deploy:\n      placement: {constraints: [node.hostname == edge-1]}\n",
    )
    .unwrap_err();
    insta::assert_snapshot!(err, @r"
    stacks/web/compose.yaml:6:3: stack `web`: service `app` shares the network of `vpn` (`network_mode: service:vpn`), which does not run on host `edge-1`
    stacks/web/compose.yaml:11:3: stack `web`: service `db` wants the container name `web-cache-1` on host `edge-1`, already used there by `web/cache`
    ");
}

#[test]
fn build_with_image_is_a_warning_not_an_error() {
    let dir = web("services:\n  api:\n    image: reg.example/api:1\n    build:\n      context: .\n  db:\n    image: postgres:16\n");
    let loaded = load_with(dir.path(), &LoadOptions::default()).unwrap();
    let warnings: Vec<String> = loaded
        .warnings
        .iter()
        .map(|w| format!("{}: {}", w.location, w.message))
        .collect();
    assert_eq!(
        warnings,
        ["stacks/web/compose.yaml:4:5: service `api` has `build`: berth deploys `reg.example/api:1` from its registry and builds nothing"]
    );
}
