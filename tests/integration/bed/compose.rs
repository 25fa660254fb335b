//! Compose files as people write them (`.env`, `env_file`, anchors,
//! `extends`, profiles) and the service keys that map onto engine settings,
//! checked on the engines with `docker inspect`.

use super::{apply, plan};
use crate::support::{berth_env, expect_code, Bed, Failed, HOSTS};

/// A stack written the way people write Compose files: image repo from
/// `.env`, tag from the environment, `env_file`, anchors and merge keys, an
/// `extends`ed service, a profile left out. Applied, served, idempotent;
/// a changed `.env` value replaces exactly the services that use it.
#[test]
fn compose_as_people_write_it_applies_and_follows_dotenv() -> Result<(), Failed> {
    let bed = &Bed::take();
    let project = "t-compose";
    let _scope = bed.scope(project);
    let web_image = bed.get("BED_WEB_V1");
    let Some((web_repo, web_tag)) = web_image.rsplit_once(':') else {
        return Err(format!("no tag in {web_image}").into());
    };
    let repo = bed.repo(project);
    let dotenv = |greeting: &str| {
        format!(
            "# committed stack variables\nWEB_REPO={web_repo}\nWORKER_IMAGE=\"{}\"\nGREETING={greeting}\n",
            bed.get("BED_WORKER")
        )
    };
    repo.write("stacks/site/.env", &dotenv("hello"));
    repo.write(
        "stacks/site/web.env",
        "LOG_LEVEL=info\nexport MODE='production'\n",
    );
    repo.write(
        "stacks/site/compose.yaml",
        "\
version: \"3.8\"
x-defaults: &defaults
  restart: unless-stopped
  stop_grace_period: 1s
services:
  web:
    <<: *defaults
    image: ${WEB_REPO}:${WEB_TAG:?set WEB_TAG}
    ports: [\"18095:80\"]
    env_file: web.env
    environment:
      GREETING: ${GREETING:-hi}
    deploy:
      replicas: 2
      placement:
        constraints: [node.labels.role == web]
  worker:
    <<: *defaults
    image: ${WORKER_IMAGE}
    deploy:
      mode: global
      placement:
        constraints: [node.labels.role == worker]
  worker-b:
    extends: worker
    environment:
      QUEUE: b
  edge:
    image: ${WORKER_IMAGE}
    container_name: site-edge
    expose: [\"8080\"]
    depends_on:
      web: {condition: service_healthy}
    deploy:
      placement:
        constraints: [node.hostname == edge-1]
  debug:
    image: ${WORKER_IMAGE}
    profiles: [debug]
",
    );
    repo.commit("compose as people write it");
    let path = repo.path().display().to_string();
    let env = [("WEB_TAG", web_tag)];
    let run = berth_env(repo.path(), &["apply", "--repo", &path], &env);
    expect_code(&run, 0);
    check!(
        run.stdout
            .contains("Plan: 5 to create, 0 to replace, 0 to remove."),
        "{run}"
    );
    // `container_name` names the container; `expose` reaches the engine.
    let exposed = bed.docker_ok(
        "edge-1",
        &[
            "inspect",
            "-f",
            "{{json .Config.ExposedPorts}}",
            "site-edge",
        ],
    );
    check!(exposed.contains("8080/tcp"), "site-edge exposes {exposed}");
    check!(
        run.stderr.contains("`version` is obsolete"),
        "no warning about `version`\n{run}"
    );
    for host in ["edge-1", "edge-2"] {
        let body = bed.http_get(host, 18095);
        check!(
            body.trim() == "berth-test web v1",
            "{host}:18095 answered {body:?}"
        );
    }
    // The environment of every web replica, whichever host it landed on.
    let web_env = || {
        ["edge-1", "edge-2"]
            .iter()
            .flat_map(|host| {
                bed.containers(host, project)
                    .into_keys()
                    .filter(|n| n.starts_with("site-web-"))
                    .map(|n| bed.docker_ok(host, &["inspect", "-f", "{{json .Config.Env}}", &n]))
                    .collect::<Vec<_>>()
            })
            .collect::<Vec<_>>()
    };
    let envs = web_env();
    check!(
        envs.len() == 2
            && envs
                .iter()
                .all(|e| e.contains("GREETING=hello") && e.contains("MODE=production")),
        "web environment: {envs:?}"
    );
    let edge3: Vec<String> = bed.containers("edge-3", project).keys().cloned().collect();
    check!(
        edge3 == ["site-worker-1", "site-worker-b-1"],
        "edge-3 runs {edge3:?} (debug is in a profile left out)"
    );

    let before: Vec<_> = HOSTS.iter().map(|h| bed.containers(h, project)).collect();
    let run = berth_env(
        repo.path(),
        &["apply", "--repo", &path, "--detailed-exitcode"],
        &env,
    );
    expect_code(&run, 0);
    check!(run.stdout.contains("No changes."), "{run}");
    let after: Vec<_> = HOSTS.iter().map(|h| bed.containers(h, project)).collect();
    check!(before == after, "a no-op apply changed containers");

    repo.write("stacks/site/.env", &dotenv("bonjour"));
    repo.commit("greeting");
    let run = berth_env(repo.path(), &["apply", "--repo", &path], &env);
    expect_code(&run, 0);
    check!(
        run.stdout
            .contains("Plan: 0 to create, 2 to replace, 0 to remove."),
        "only the web replicas use GREETING\n{run}"
    );
    check!(
        run.stdout
            .contains("~ variables.GREETING = \"hello\" -> \"bonjour\""),
        "the plan must name the variable that changed\n{run}"
    );
    let workers = bed.containers("edge-3", project);
    check!(
        workers == before[2],
        "the workers were touched: {workers:?}"
    );
    let envs = web_env();
    check!(
        envs.len() == 2 && envs.iter().all(|e| e.contains("GREETING=bonjour")),
        "web environment: {envs:?}"
    );
    Ok(())
}

/// Compose keys that map onto engine settings arrive on the containers as
/// written (read back with `docker inspect`), a sidecar shares the web
/// container's network by `network_mode: service:`, and a second apply
/// changes nothing.
#[test]
fn compose_service_keys_reach_the_engine() -> Result<(), Failed> {
    let bed = &Bed::take();
    let project = "t-keys";
    let _scope = bed.scope(project);
    let repo = bed.repo(project);
    let compose = |web: &str| {
        format!(
            r#"services:
  web:
    image: {web}
    container_name: t-keys-web
    hostname: www
    domainname: example.test
    expose: ["9000", "9001/udp"]
    extra_hosts:
      - "db.internal=10.1.2.3"
      - "gateway:host-gateway"
    dns: [10.77.0.1]
    dns_search: example.test
    sysctls:
      net.core.somaxconn: 1024
    init: true
    stop_signal: SIGQUIT
    stop_grace_period: 1s
    deploy:
      mode: global
      placement:
        constraints: [node.labels.role == web]
      restart_policy: {{condition: on-failure, max_attempts: 2}}
  sidecar:
    image: {worker}
    network_mode: service:web
    stop_grace_period: 1s
    deploy:
      mode: global
      placement:
        constraints: [node.labels.role == web]
"#,
            worker = bed.get("BED_WORKER"),
        )
    };
    repo.write("stacks/keys/compose.yaml", &compose(&bed.get("BED_WEB_V1")));
    repo.commit("service keys");
    let run = apply(&repo, &[]);
    expect_code(&run, 0);
    for host in ["edge-1", "edge-2"] {
        let names: Vec<String> = bed.containers(host, project).into_keys().collect();
        check!(
            names == ["keys-sidecar-1", "t-keys-web"],
            "{host}: unexpected containers {names:?}"
        );
        let inspect = |format: &str, name: &str| {
            bed.docker_ok(host, &["inspect", "-f", format, name])
                .trim()
                .to_string()
        };
        let web = "t-keys-web";
        let cases = [
            ("{{.Config.Hostname}}", "www"),
            ("{{.Config.Domainname}}", "example.test"),
            ("{{json .HostConfig.ExtraHosts}}", r#"["db.internal:10.1.2.3","gateway:host-gateway"]"#),
            ("{{json .HostConfig.Dns}}", r#"["10.77.0.1"]"#),
            ("{{json .HostConfig.DnsSearch}}", r#"["example.test"]"#),
            ("{{json .HostConfig.Sysctls}}", r#"{"net.core.somaxconn":"1024"}"#),
            ("{{json .HostConfig.Init}}", "true"),
            ("{{.Config.StopSignal}}", "SIGQUIT"),
            ("{{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}", "on-failure:2"),
        ];
        for (format, want) in cases {
            let got = inspect(format, web);
            check!(got == want, "{host}: {format} is {got:?}, want {want:?}");
        }
        let exposed = inspect("{{json .Config.ExposedPorts}}", web);
        check!(
            exposed.contains("\"9000/tcp\"") && exposed.contains("\"9001/udp\""),
            "{host}: exposed ports {exposed}"
        );
        // The engine resolved the name to the web container's ID at create.
        let web_id = inspect("{{.Id}}", web);
        let mode = inspect("{{.HostConfig.NetworkMode}}", "keys-sidecar-1");
        check!(
            mode == format!("container:{web_id}"),
            "{host}: sidecar network mode {mode}, web is {web_id}"
        );
        let hosts_file = bed.docker_ok(host, &["exec", web, "cat", "/etc/hosts"]);
        check!(
            hosts_file.contains("10.1.2.3\tdb.internal"),
            "{host}: /etc/hosts lacks the extra host:\n{hosts_file}"
        );
        let body = bed.docker_ok(
            host,
            &[
                "exec",
                "keys-sidecar-1",
                "wget",
                "-qO-",
                "http://127.0.0.1/",
            ],
        );
        check!(
            body.contains("berth-test web v1"),
            "{host}: the sidecar does not reach web over the shared network: {body:?}"
        );
    }

    let run = apply(&repo, &["--detailed-exitcode"]);
    expect_code(&run, 0);
    check!(run.stdout.contains("No changes."), "{run}");

    // A new web image replaces the sidecar too: its network namespace was
    // the old web container's. The plan says why.
    repo.write("stacks/keys/compose.yaml", &compose(&bed.get("BED_WEB_V2")));
    repo.commit("web v2");
    let run = plan(&repo, &[]);
    expect_code(&run, 0);
    check!(
        run.stdout.contains("keys/sidecar.1 replace (follows.web)"),
        "{run}"
    );
    expect_code(&apply(&repo, &[]), 0);
    for host in ["edge-1", "edge-2"] {
        let web_id = bed
            .docker_ok(host, &["inspect", "-f", "{{.Id}}", "t-keys-web"])
            .trim()
            .to_string();
        let mode = bed
            .docker_ok(
                host,
                &[
                    "inspect",
                    "-f",
                    "{{.HostConfig.NetworkMode}}",
                    "keys-sidecar-1",
                ],
            )
            .trim()
            .to_string();
        check!(
            mode == format!("container:{web_id}"),
            "{host}: sidecar network mode {mode}, web is now {web_id}"
        );
        let body = bed.docker_ok(
            host,
            &[
                "exec",
                "keys-sidecar-1",
                "wget",
                "-qO-",
                "http://127.0.0.1/",
            ],
        );
        check!(body.contains("berth-test web v2"), "{host}: {body:?}");
    }
    Ok(())
}

/// A fixed `ipv4_address` is the container's address on that network (and
/// on each host, which has its own bridge); `pull_policy: never` deploys an
/// image the host has without pulling, and stops the whole apply before any
/// change when a host lacks one.
#[test]
fn compose_fixed_addresses_and_pull_policy_never() -> Result<(), Failed> {
    let bed = &Bed::take();
    let project = "t-addr";
    let _scope = bed.scope(project);
    let repo = bed.repo(project);
    let web = bed.get("BED_WEB_V1");
    let compose = |extra: &str| {
        format!(
            r#"services:
  web:
    image: {web}
    stop_grace_period: 1s
    deploy:
      mode: global
      placement:
        constraints: [node.labels.role == web]
    networks:
      front:
        ipv4_address: 10.213.7.10
  cached:
    image: {web}
    pull_policy: never
    stop_grace_period: 1s
    deploy:
      mode: global
      placement:
        constraints: [node.labels.role == web]
    networks: [front]
{extra}networks:
  front:
    ipam:
      config:
        - subnet: 10.213.7.0/24
"#
        )
    };
    repo.write("stacks/addr/compose.yaml", &compose(""));
    repo.commit("a fixed address");
    // `cached` never pulls, so the hosts get the image by hand first, as an
    // operator would (other tests may have removed it).
    for host in ["edge-1", "edge-2"] {
        bed.docker_ok(host, &["pull", "-q", &web]);
    }
    let run = apply(&repo, &[]);
    expect_code(&run, 0);
    for host in ["edge-1", "edge-2"] {
        let names: Vec<String> = bed.containers(host, project).into_keys().collect();
        check!(
            names == ["addr-cached-1", "addr-web-1"],
            "{host}: unexpected containers {names:?}"
        );
        let address = bed
            .docker_ok(
                host,
                &[
                    "inspect",
                    "-f",
                    "{{(index .NetworkSettings.Networks \"addr_front\").IPAddress}}",
                    "addr-web-1",
                ],
            )
            .trim()
            .to_string();
        check!(
            address == "10.213.7.10",
            "{host}: web has address {address:?}"
        );
    }
    let run = apply(&repo, &["--detailed-exitcode"]);
    expect_code(&run, 0);

    // An image no host has, with `never`: refused before anything changes.
    let absent = "10.77.0.1:5000/berth-test/never-pushed:1";
    repo.write(
        "stacks/addr/compose.yaml",
        &compose(&format!(
            "  offline:\n    image: {absent}\n    pull_policy: never\n    deploy: {{mode: global, placement: {{constraints: [node.labels.role == web]}}}}\n"
        )),
    );
    repo.commit("an image never pulled");
    let run = apply(&repo, &[]);
    expect_code(&run, 1);
    check!(
        run.stderr.contains(&format!(
            "stacks/addr/compose.yaml:23:18: image `{absent}` is not on host `edge-1` and `pull_policy` of service `offline` is `never`"
        )) && run.stderr.contains("no host was changed"),
        "{run}"
    );
    for host in ["edge-1", "edge-2"] {
        let names: Vec<String> = bed.containers(host, project).into_keys().collect();
        check!(
            names == ["addr-cached-1", "addr-web-1"],
            "{host}: containers changed to {names:?}"
        );
    }
    Ok(())
}
