//! Unit tests of configuration loading and validation.

use super::*;
use crate::api::Credentials;
use crate::model::ContainmentType;
use chrono::TimeDelta;
use std::time::Duration;

const MINIMAL: &str = r#"
    [api]
    client_id = "cs-1"
    client_secret = "s"
    [[bots]]
    id = "st-1"
"#;

#[test]
fn defaults_fill_everything_but_the_bots() {
    let c = from_toml(MINIMAL).unwrap();
    assert_eq!(c.api.base_url.as_str(), "https://bots.kore.ai/");
    assert_eq!(c.api.page_size, 100);
    assert_eq!(c.api.max_page_size, 1000);
    assert_eq!(c.api.requests_per_minute, 60);
    assert_eq!(c.api.requests_per_hour, 1800);
    assert_eq!(c.sync.plan.window, TimeDelta::days(6));
    assert_eq!(c.trigger, Trigger::Interval(Duration::from_secs(900)));
    assert_eq!(c.sync.containment_types, ContainmentType::ALL.to_vec());
    assert_eq!(c.scopes.len(), 1);
    assert_eq!(c.scopes[0].bot_id, "st-1");
}

#[test]
fn every_problem_is_reported_at_once() {
    let err = from_toml(
        r#"
        [api]
        base_url = "not a url"
        [sync]
        window = "7d"
        lag = "soon"
        containment_types = ["selfService", "human"]
        [[bots]]
        id = "st-1"
        "#,
    )
    .unwrap_err();
    let ConfigError::Invalid(problems) = &err else {
        panic!("{err}")
    };
    let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "api.base_url",
            "sync.window",
            "sync.lag",
            "sync.containment_types",
            "bots[0]"
        ]
    );
    let text = err.to_string();
    assert!(text.contains("5 problems"), "{text}");
    assert!(text.contains("the API refuses"), "{text}");
    assert!(text.contains("client_secret"), "{text}");
}

#[test]
fn max_page_size_defaults_above_page_size_and_may_not_be_below_it() {
    let c = from_toml(&MINIMAL.replace("[api]\n", "[api]\npage_size = 2000\n")).unwrap();
    assert_eq!((c.api.page_size, c.api.max_page_size), (2000, 2000));
    let err =
        from_toml(&MINIMAL.replace("[api]\n", "[api]\npage_size = 200\nmax_page_size = 50\n"))
            .unwrap_err()
            .to_string();
    assert!(
        err.contains("api.max_page_size") && err.contains("below api.page_size"),
        "{err}"
    );
}

#[test]
fn unknown_keys_are_refused_by_name() {
    let err = from_toml(&format!("{MINIMAL}\n[sync]\nwindw = \"6d\"\n")).unwrap_err();
    assert!(err.to_string().contains("windw"), "{err}");
}

#[test]
fn an_empty_bot_list_without_account_is_refused() {
    let err = from_toml("[api]\nclient_id = \"a\"\nclient_secret = \"b\"\n").unwrap_err();
    assert!(
        err.to_string().contains("no [[bots]] and no [account]"),
        "{err}"
    );
}

#[test]
fn bot_credentials_override_api_and_account_is_keyed_star() {
    let c = from_toml(
        r#"
        [api]
        client_id = "cs-api"
        client_secret = "s"
        [[bots]]
        id = "st-1"
        [[bots]]
        id = "st-2"
        client_id = "cs-own"
        client_secret = "t"
        [account]
        token = "ready.jwt.here"
        "#,
    )
    .unwrap();
    let ids: Vec<String> = c.scopes.iter().map(|s| s.credentials.describe()).collect();
    assert_eq!(
        ids,
        [
            "client_id \"cs-api\"",
            "client_id \"cs-own\"",
            "the configured token"
        ]
    );
    assert_eq!(c.scopes[2].bot_id, "*");
    // Secrets never show in Debug output.
    assert!(!format!("{c:?}").contains("ready.jwt.here"));
}

#[test]
fn secret_file_is_read_and_loose_permissions_warn() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("secret");
    std::fs::write(&f, "from-file\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let c = from_toml(&format!(
        "[api]\nclient_id = \"a\"\nclient_secret_file = {:?}\n[[bots]]\nid = \"st-1\"\n",
        f.display().to_string()
    ))
    .unwrap();
    let Credentials::ClientSecret { client_secret, .. } = &c.scopes[0].credentials else {
        panic!()
    };
    assert_eq!(client_secret.expose(), "from-file");
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
}

#[test]
fn cron_schedule_is_checked() {
    let ok = from_toml(&format!(
        "{MINIMAL}\n[sync]\nschedule = \"0 */15 * * * *\"\n"
    ))
    .unwrap();
    assert_eq!(ok.trigger, Trigger::Cron("0 */15 * * * *".into()));
    let err = from_toml(&format!(
        "{MINIMAL}\n[sync]\nschedule = \"every now and then\"\n"
    ))
    .unwrap_err();
    assert!(err.to_string().contains("sync.schedule"), "{err}");
}

#[test]
fn instants_in_both_api_forms() {
    assert_eq!(
        parse_instant("2025-01-02").unwrap().to_rfc3339(),
        "2025-01-02T00:00:00+00:00"
    );
    assert_eq!(
        parse_instant("2025-01-02T03:04:05.678Z")
            .unwrap()
            .timestamp_millis(),
        1_735_787_045_678
    );
    assert_eq!(
        parse_instant("2025-01-02T03:04:05").unwrap().to_rfc3339(),
        "2025-01-02T03:04:05+00:00"
    );
    assert!(
        parse_instant("02/01/2025")
            .unwrap_err()
            .contains("yyyy-mm-dd")
    );
}

#[test]
fn issue_12_reconcile_deletes_and_the_verify_schedule_have_defaults_and_checks() {
    let c = from_toml(MINIMAL).unwrap();
    assert_eq!(c.sync.reconcile, TimeDelta::days(7));
    assert_eq!(c.sync.deletes, crate::model::Deletes::Delete);
    assert_eq!(c.verify_schedule.as_deref(), Some("0 30 3 * * *"));
    let off = from_toml(&format!(
        "{MINIMAL}\n[sync]\nreconcile = \"0s\"\ndeletes = \"keep\"\nverify_schedule = \"\"\n"
    ))
    .unwrap();
    assert_eq!(off.sync.reconcile, TimeDelta::zero());
    assert_eq!(off.sync.deletes, crate::model::Deletes::Keep);
    assert_eq!(off.verify_schedule, None);
    let err = from_toml(&format!(
        "{MINIMAL}\n[sync]\nreconcile = \"10m\"\ndeletes = \"purge\"\nverify_schedule = \"daily\"\n"
    ))
    .unwrap_err()
    .to_string();
    for key in ["sync.reconcile", "sync.deletes", "sync.verify_schedule"] {
        assert!(err.contains(key), "names {key}: {err}");
    }
    assert!(err.contains("shorter than sync.lookback"), "{err}");
}

#[test]
fn unknown_keys_in_api_and_bot_tables_are_refused_by_name() {
    let err = from_toml(&MINIMAL.replace("client_id", "clent_id"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("api.clent_id"), "{err}");
    let err = from_toml(&format!("{MINIMAL}colour = \"red\"\n"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("bots[0].colour"), "{err}");
}

#[test]
fn issue_13_the_storage_version_defaults_to_v1_4_0_and_is_checked() {
    let c = from_toml(MINIMAL).unwrap();
    assert_eq!(c.warehouse.storage_version, "v1.4.0");
    let own = from_toml(&format!(
        "{MINIMAL}\n[warehouse]\nstorage_version = \"v1.5.0\"\n"
    ))
    .unwrap();
    assert_eq!(own.warehouse.storage_version, "v1.5.0");
    let err = from_toml(&format!(
        "{MINIMAL}\n[warehouse]\nstorage_version = \"1.4\"\n"
    ))
    .unwrap_err()
    .to_string();
    assert!(err.contains("warehouse.storage_version"), "{err}");
}

#[test]
fn issue_22_the_memory_limit_defaults_to_64_mib_and_is_checked() {
    let c = from_toml(MINIMAL).unwrap();
    assert_eq!(c.warehouse.memory_limit, 64 << 20);
    let own = from_toml(&format!(
        "{MINIMAL}\n[warehouse]\nmemory_limit = \"1GiB\"\n"
    ))
    .unwrap();
    assert_eq!(own.warehouse.memory_limit, 1 << 30);
    for bad in ["16MiB", "lots", "64MB"] {
        let err = from_toml(&format!("{MINIMAL}\n[warehouse]\nmemory_limit = {bad:?}\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("warehouse.memory_limit"), "{bad}: {err}");
        assert!(err.contains("at least 32MiB"), "{bad}: {err}");
    }
}

#[test]
fn issue_13_parquet_dir_takes_a_directory_or_an_object_store_url() {
    let dir = from_toml(&format!("{MINIMAL}\n[warehouse]\nparquet_dir = \"lake\"\n")).unwrap();
    assert_eq!(
        dir.warehouse.parquet,
        Some(crate::store::ParquetTarget::Dir("lake".into()))
    );
    let s3 = from_toml(&format!(
        "{MINIMAL}\n[warehouse]\nparquet_dir = \"s3://bucket/kore\"\n\
         [warehouse.s3]\nendpoint = \"http://127.0.0.1:9000\"\nallow_http = true\n\
         secret_access_key = \"from-the-table\"\n"
    ))
    .unwrap();
    let Some(crate::store::ParquetTarget::Object(target)) = &s3.warehouse.parquet else {
        panic!("{:?}", s3.warehouse.parquet)
    };
    assert_eq!(target.url.as_str(), "s3://bucket/kore");
    let option = |k: &str| {
        target
            .options
            .iter()
            .filter(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>()
    };
    assert_eq!(option("aws_endpoint"), ["http://127.0.0.1:9000"]);
    assert_eq!(option("aws_allow_http"), ["true"]);
    assert_eq!(option("aws_secret_access_key"), ["from-the-table"]);
    assert!(
        !format!("{s3:?}").contains("from-the-table"),
        "Debug shows no secret"
    );
}

#[test]
fn issue_13_object_store_mistakes_are_named() {
    let err = from_toml(&format!(
        "{MINIMAL}\n[warehouse]\nparquet_dir = \"s3:///kore\"\npublish_interval = \"soon\"\n"
    ))
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("warehouse.parquet_dir") && err.contains("names no bucket"),
        "{err}"
    );
    assert!(err.contains("warehouse.publish_interval"), "{err}");
    let err = from_toml(&format!(
        "{MINIMAL}\n[warehouse]\nparquet_dir = \"/data/lake\"\n[warehouse.s3]\nregion = \"eu-west-1\"\n"
    ))
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("warehouse.s3") && err.contains("not an s3:// URL"),
        "{err}"
    );
}

#[test]
fn issue_13_only_bots_take_names() {
    let c = from_toml(&format!("{MINIMAL}name = \"Helpdesk\"\n")).unwrap();
    assert_eq!(c.scopes[0].name.as_deref(), Some("Helpdesk"));
    let err = from_toml(&format!(
        "{MINIMAL}\n[account]\nname = \"All\"\nclient_id = \"a\"\nclient_secret = \"b\"\n"
    ))
    .unwrap_err()
    .to_string();
    assert!(err.contains("account.name"), "{err}");
}

#[test]
fn issue_15_file_modes_default_closed_and_are_checked() {
    let c = from_toml(MINIMAL).unwrap();
    assert_eq!(c.warehouse.modes.warehouse, 0o600);
    assert_eq!(c.warehouse.modes.published, 0o640);
    let c = from_toml(&format!(
        "{MINIMAL}\n[warehouse]\nfile_mode = \"0640\"\npublish_mode = \"644\"\n"
    ))
    .unwrap();
    assert_eq!(
        (c.warehouse.modes.warehouse, c.warehouse.modes.published),
        (0o640, 0o644)
    );
    let err = from_toml(&format!(
        "{MINIMAL}\n[warehouse]\nfile_mode = \"0400\"\npublish_mode = \"rw-r-----\"\n"
    ))
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("warehouse.file_mode") && err.contains("warehouse.publish_mode"),
        "{err}"
    );
}

#[test]
fn issue_15_privacy_needs_a_long_key_and_known_entries() {
    // Pseudonymising without a key is refused (outside systemd: no
    // $CREDENTIALS_DIRECTORY in the test's environment).
    let err = from_toml(&format!(
        "{MINIMAL}\n[privacy]\npseudonymize = [\"user_id\"]\n"
    ))
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("privacy.pseudonymize") && err.contains("key_file"),
        "{err}"
    );
    let err = from_toml(&format!(
        "{MINIMAL}\n[privacy]\npseudonymize = [\"user_id\"]\nkey = \"short\"\n"
    ))
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("privacy.key") && err.contains("openssl rand -hex 32"),
        "{err}"
    );
    let err = from_toml(&format!(
        "{MINIMAL}\n[privacy]\npseudonymize = [\"email\"]\nkey = \"{}\"\n",
        "k".repeat(32)
    ))
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("\"email\"") && err.contains("tag:NAME"),
        "{err}"
    );
    // Dropping tags needs no key.
    let c = from_toml(&format!(
        "{MINIMAL}\n[privacy]\ndrop_tags = [\"callerNumber\"]\n"
    ))
    .unwrap();
    assert!(c.sync.privacy.drops_tag("callernumber"));
}

#[test]
fn issue_15_the_privacy_key_comes_from_a_file_and_never_shows() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("privacy_key");
    let key = "0123456789abcdef".repeat(4);
    std::fs::write(&f, format!("{key}\n")).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let c = from_toml(&format!(
        "{MINIMAL}\n[privacy]\npseudonymize = [\"user_id\", \"tag:email\"]\nkey_file = {:?}\n",
        f.display().to_string()
    ))
    .unwrap();
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let rules = &c.sync.privacy;
    assert!(rules.user_id_fields() && rules.hashes_tag("email"));
    let same = crate::privacy::PrivacyRules::new(
        &["user_id".into()],
        &[],
        true,
        Some(crate::privacy::PseudonymKey::new(&key)),
    )
    .unwrap();
    assert_eq!(rules.pseudonym("u-1"), same.pseudonym("u-1"));
    assert!(!format!("{c:?}").contains(&key));
    let raw: raw::RawPrivacy = toml_privacy(&key);
    assert!(!format!("{raw:?}").contains(&key));
}

fn toml_privacy(key: &str) -> raw::RawPrivacy {
    raw::RawPrivacy {
        key: Some(key.to_owned()),
        ..Default::default()
    }
}

#[test]
fn issue_15_a_user_id_filter_and_pseudonymised_ids_are_refused_together() {
    let err = from_toml(&format!(
        "[api]\nclient_id = \"a\"\nclient_secret = \"s\"\n[[bots]]\nid = \"st-1\"\nuser_id = \"alice@example.com\"\n\
         [privacy]\npseudonymize = [\"user_id\"]\nkey = \"{}\"\n",
        "k".repeat(32)
    ))
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("bots.st-1.user_id") && err.contains("remove one"),
        "{err}"
    );
}
