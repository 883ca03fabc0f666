//! Mutual TLS between the agent, the CLI and the aggregator, with
//! certificates made for the test (a CA, a server certificate for
//! 127.0.0.1, a client certificate, and a stranger's self-signed one).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gpuscope_tests::{KillOnDrop, V2Tree, fake_nvml_lib, free_port, workspace_bin};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

struct Pki {
    ca: PathBuf,
    server: (PathBuf, PathBuf),
    client: (PathBuf, PathBuf),
    stranger: (PathBuf, PathBuf),
}

fn write_pair(dir: &Path, name: &str, cert: &str, key: &KeyPair) -> (PathBuf, PathBuf) {
    let (c, k) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    std::fs::write(&c, cert).expect("write cert");
    std::fs::write(&k, key.serialize_pem()).expect("write key");
    (c, k)
}

fn pki(dir: &Path) -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca =
        CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("key")).expect("ca");
    let ca_path = dir.join("ca.crt");
    std::fs::write(&ca_path, ca.pem()).expect("write ca");
    let leaf = |name: &str, sans: Vec<String>| {
        let key = KeyPair::generate().expect("key");
        let cert = CertificateParams::new(sans)
            .expect("params")
            .signed_by(&key, &ca)
            .expect("sign");
        write_pair(dir, name, &cert.pem(), &key)
    };
    let server = leaf("server", vec!["127.0.0.1".into(), "localhost".into()]);
    let client = leaf("client", vec!["gpuscope-agent".into()]);
    let stranger_key = KeyPair::generate().expect("key");
    let stranger_cert = CertificateParams::new(vec!["stranger".to_owned()])
        .expect("params")
        .self_signed(&stranger_key)
        .expect("self-signed");
    let stranger = write_pair(dir, "stranger", &stranger_cert.pem(), &stranger_key);
    Pki {
        ca: ca_path,
        server,
        client,
        stranger,
    }
}

fn cli(
    url: &str,
    ca: Option<&Path>,
    client: Option<&(PathBuf, PathBuf)>,
    args: &[&str],
) -> std::process::Output {
    let mut cmd = Command::new(workspace_bin("gpuscope"));
    cmd.args(["--aggregator", url]);
    if let Some(ca) = ca {
        cmd.arg("--tls-ca").arg(ca);
    }
    if let Some((c, k)) = client {
        cmd.arg("--tls-client-cert")
            .arg(c)
            .arg("--tls-client-key")
            .arg(k);
    }
    cmd.args(args).output().expect("run gpuscope")
}

#[test]
fn mutual_tls_delivers_and_refuses_strangers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = pki(dir.path());
    let port = free_port();
    let _aggregator = KillOnDrop(
        Command::new(workspace_bin("gpuscope-aggregator"))
            .args([
                "--no-kube",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
            ])
            .arg(dir.path().join("data"))
            .arg("--tls-cert")
            .arg(&p.server.0)
            .arg("--tls-key")
            .arg(&p.server.1)
            .arg("--tls-client-ca")
            .arg(&p.ca)
            .stdout(Stdio::null())
            .spawn()
            .expect("aggregator"),
    );
    let url = format!("https://127.0.0.1:{port}");
    let scenario = dir.path().join("s.json");
    std::fs::write(
        &scenario,
        r#"{"gpus": [{"uuid": "GPU-7150-0000-4000-8000-000000000001", "xids": [{"t": 0.5, "xid": 31}, {"t": 0.7, "xid": 43}]}]}"#,
    )
    .expect("scenario");
    let tree = V2Tree::new();
    let _agent = KillOnDrop(
        Command::new(workspace_bin("gpuscope-agent"))
            .args(["run", "--aggregator", &url])
            .arg("--tls-ca")
            .arg(&p.ca)
            .arg("--tls-client-cert")
            .arg(&p.client.0)
            .arg("--tls-client-key")
            .arg(&p.client.1)
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .arg("--cgroup-root")
            .arg(tree.root())
            .arg("--nvml-lib")
            .arg(fake_nvml_lib())
            .args(["--kmsg", "/nonexistent-kmsg", "--interval", "200ms"])
            .arg("--pod-resources-socket")
            .arg(dir.path().join("none.sock"))
            .env("GPUSCOPE_FAKE_NVML_SCENARIO", &scenario)
            .stdout(Stdio::null())
            .spawn()
            .expect("agent"),
    );
    // Both XIDs arrive over mutual TLS and are listed by a CLI that has a
    // client certificate.
    let deadline = Instant::now() + Duration::from_secs(20);
    let xids = loop {
        let out = cli(
            &url,
            Some(&p.ca),
            Some(&p.client),
            &["-o", "json", "events"],
        );
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let xids: Vec<u64> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["kind"] == "xid")
            .filter_map(|v| v["xid"].as_u64())
            .collect();
        if xids.len() == 2 || Instant::now() > deadline {
            break xids;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(xids, vec![31, 43]);

    // No client certificate, a stranger's certificate, plain HTTP: refused.
    for (what, out) in [
        (
            "no client certificate",
            cli(&url, Some(&p.ca), None, &["nodes"]),
        ),
        (
            "a stranger's certificate",
            cli(&url, Some(&p.ca), Some(&p.stranger), &["nodes"]),
        ),
        (
            "plain HTTP",
            cli(&format!("http://127.0.0.1:{port}"), None, None, &["nodes"]),
        ),
    ] {
        assert!(
            !out.status.success(),
            "{what} must be refused: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}
