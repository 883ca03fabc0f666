//! The documentation of findings keeps up with the code: every kind and
//! every threshold is in `docs/diagnosis.md`.

use gpuscope_diagnose::{Config, Kind};

fn doc() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/diagnosis.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_kind_is_documented() {
    let doc = doc();
    for k in Kind::ALL {
        assert!(
            doc.contains(&format!("| `{}` |", k.as_str())),
            "docs/diagnosis.md has no row for kind {k}"
        );
    }
}

#[test]
fn every_threshold_is_documented() {
    let doc = doc();
    let config = serde_json::to_value(Config::default()).expect("config serializes");
    let families = config.as_object().expect("an object of families");
    assert!(!families.is_empty());
    for (family, fields) in families {
        for field in fields.as_object().expect("an object of thresholds").keys() {
            assert!(
                doc.contains(&format!("| `{family}.{field}` |")),
                "docs/diagnosis.md has no row for threshold {family}.{field}"
            );
        }
    }
}
