//! The canonical kube-state-metrics fixture is committed, current, and says what the scenario table says.
//!
//! - `committed`: `tests/fixtures/prometheus/kube-state-metrics.om` equals what `support::scenarios`
//!   renders. Regenerate with `UPDATE_FIXTURES=1 cargo test --test fixtures_current`.
//! - `rendering`: the OpenMetrics renderer and the timestamp shifter.
//! - `launcher`: `TestPrometheus` really serves the backfilled blocks, shifted or not, and cleans up.
//! - `facts`: per scenario, the PromQL facts the guardrails rely on, asked of a real Prometheus at END.
//!
//! Needs `prometheus` and `promtool` on the PATH (`make deps`).

use crate::support;

use support::prometheus::{self, TestPrometheus};
use support::scenarios::{self, Scenario, END, MINUTE};

/// Selector of a scenario's pods: `namespace="…",created_by_name="<rollout>-<hash>"`.
fn pods_of(scenario: &Scenario) -> String {
    format!(
        r#"namespace="{}",created_by_name="{}""#,
        scenario.namespace,
        scenario.replica_set()
    )
}

/// Selector of one pod: `namespace="…",pod="…"`.
fn pod(scenario: &Scenario, name: &str) -> String {
    format!(r#"namespace="{}",pod="{name}""#, scenario.namespace)
}

mod committed {
    use super::*;

    #[test]
    fn committed_fixture_equals_the_rendering() {
        let path = scenarios::fixture_path();
        let rendered = scenarios::render();
        if std::env::var_os("UPDATE_FIXTURES").is_some() {
            std::fs::write(&path, &rendered).expect("write the fixture");
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "cannot read {} ({e}); regenerate with `UPDATE_FIXTURES=1 cargo test --test fixtures_current`",
                path.display()
            )
        });
        assert!(
            committed == rendered,
            "{} is stale; regenerate with `UPDATE_FIXTURES=1 cargo test --test fixtures_current`",
            path.display()
        );
    }

    #[test]
    fn fixture_stays_small() {
        let size = scenarios::render().len();
        assert!(size < 8 * 1024 * 1024, "the fixture grew to {size} bytes");
    }
}

mod rendering {
    use super::*;
    use support::ksm::{escape_label_value, Container, Fixture, Pod, Steps, Timeline};

    #[test]
    fn label_values_escape_backslash_quote_and_newline() {
        assert_eq!(escape_label_value(r#"a\b"c"#), r#"a\\b\"c"#);
        assert_eq!(escape_label_value("line\nnext"), r"line\nnext");
        assert_eq!(escape_label_value("plain {}=, "), "plain {}=, ");
    }

    #[test]
    fn timeline_is_inclusive_at_both_ends() {
        let instants: Vec<i64> = scenarios::TIMELINE.instants().collect();
        assert_eq!(instants.len(), 121);
        assert_eq!(instants.first(), Some(&scenarios::START));
        assert_eq!(instants.last(), Some(&END));
    }

    #[test]
    fn steps_hold_each_value_from_its_instant() {
        let steps = Steps::constant(0).then(100, 1).then(200, 2);
        assert_eq!(*steps.at(99), 0);
        assert_eq!(*steps.at(100), 1);
        assert_eq!(*steps.at(199), 1);
        assert_eq!(*steps.at(500), 2);
    }

    #[test]
    fn renders_families_once_counters_with_total_and_eof() {
        let timeline = Timeline {
            start: 0,
            end: 60,
            step: 30,
        };
        let text = Fixture::new(timeline)
            .pod(
                Pod::new("ns", "app-abc", "xyz12", -10)
                    .exported(30, 60)
                    .container(
                        Container::new("main", "repo/app:1")
                            .restarts(Steps::constant(0).then(60, 1))
                            .waiting(
                                Steps::constant(Some("Crash\"Loop".to_owned())).then(60, None),
                            ),
                    ),
            )
            .render();
        assert!(text.ends_with("\n# EOF\n"));
        assert_eq!(text.matches("# TYPE kube_pod_info gauge\n").count(), 1);
        assert!(text.contains("# TYPE kube_pod_container_status_restarts counter\n"));
        let restarts: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("kube_pod_container_status_restarts_total{"))
            .collect();
        assert_eq!(restarts.len(), 2, "{text}");
        assert!(restarts[0].ends_with("} 0 30") && restarts[1].ends_with("} 1 60"));
        // The waiting series exists only while waiting, with its reason escaped.
        let waiting: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("kube_pod_container_status_waiting_reason{"))
            .collect();
        assert_eq!(waiting.len(), 1, "{text}");
        assert!(
            waiting[0].contains(r#"reason="Crash\"Loop"} 1 30"#),
            "{}",
            waiting[0]
        );
        // kube-state-metrics' label order.
        assert!(
            text.contains(r#"kube_pod_container_info{namespace="ns",pod="app-abc-xyz12",uid=""#)
        );
    }

    #[test]
    fn shift_moves_sample_timestamps_and_nothing_else() {
        let text = concat!(
            "# HELP m A help 1767268800.\n",
            "# TYPE m gauge\n",
            "m{a=\"x} 1 2\",b=\"q\\\"} 3\"} 1 1767268800\n",
            "m 2.5 1767268770.250\n",
            "m{} 3\n",
            "# EOF\n"
        );
        let shifted = prometheus::shift_openmetrics(text, 100);
        assert_eq!(
            shifted,
            concat!(
                "# HELP m A help 1767268800.\n",
                "# TYPE m gauge\n",
                "m{a=\"x} 1 2\",b=\"q\\\"} 3\"} 1 1767268900\n",
                "m 2.5 1767268870.250\n",
                "m{} 3\n",
                "# EOF\n"
            )
        );
        assert_eq!(prometheus::shift_openmetrics(&shifted, -100), text);
    }

    #[test]
    fn shift_moves_the_values_of_timestamp_valued_metrics() {
        let text = "kube_pod_created{pod=\"p\"} 1767268620 1767268800\nkube_pod_info{pod=\"p\"} 1 1767268800\n";
        assert_eq!(
            prometheus::shift_openmetrics(text, 60),
            "kube_pod_created{pod=\"p\"} 1767268680 1767268860\nkube_pod_info{pod=\"p\"} 1 1767268860\n"
        );
    }
}

mod launcher {
    use super::*;
    use std::time::{Duration, Instant};

    /// Pods whose series are within the 5 m lookback at END: every pod but ops/gone's.
    fn pods_visible_at_end() -> usize {
        scenarios::SCENARIOS
            .iter()
            .chain(scenarios::DECOYS.iter())
            .filter(|scenario| **scenario != scenarios::OPS_GONE)
            .map(|scenario| scenario.pods.len())
            .sum()
    }

    #[test]
    fn shared_instance_serves_the_backfilled_fixture_at_end() {
        let prometheus = prometheus::shared();
        assert_eq!(prometheus.end(), END);
        assert_eq!(
            prometheus.query_value("count(kube_pod_info)", END),
            Some(pods_visible_at_end() as f64)
        );
        // Nothing before START: the data is what was backfilled, nothing else.
        assert_eq!(
            prometheus.query_value("count(kube_pod_info)", scenarios::START - 6 * MINUTE),
            None
        );
    }

    #[test]
    fn shifted_instance_ends_now() {
        let before = prometheus::unix_now();
        let prometheus = TestPrometheus::start_canonical_now();
        let end = prometheus.end();
        assert!((before..=prometheus::unix_now()).contains(&end));
        assert_eq!(
            prometheus.query_value("count(kube_pod_info)", end),
            Some(pods_visible_at_end() as f64)
        );
        let selector = pod(&scenarios::OPS_STALE, scenarios::OPS_STALE.pods[0]);
        assert_eq!(
            prometheus.query_value(&format!("timestamp(kube_pod_info{{{selector}}})"), end),
            Some((end - 4 * MINUTE) as f64)
        );
    }

    #[test]
    fn drop_stops_prometheus_and_removes_its_directory() {
        let prometheus = TestPrometheus::start_file(&scenarios::fixture_path());
        assert_eq!(
            prometheus.query_value("count(kube_pod_info)", END),
            Some(21.0)
        );
        let directory = prometheus.directory().to_owned();
        let address = prometheus.url().trim_start_matches("http://").to_owned();
        assert!(prometheus.log().exists());
        drop(prometheus);
        assert!(
            !directory.exists(),
            "{} survived the drop",
            directory.display()
        );
        assert!(
            std::net::TcpStream::connect(&address).is_err(),
            "prometheus still listens on {address}"
        );
    }

    /// Not a test on its own: the child process of `an_instance_never_dropped_dies_with_its_test_binary`,
    /// which runs it with `--include-ignored` and `TEST_PROMETHEUS_LEAK` set.
    #[test]
    #[ignore = "helper process of an_instance_never_dropped_dies_with_its_test_binary"]
    fn leak_an_instance_when_asked() {
        if std::env::var_os("TEST_PROMETHEUS_LEAK").is_none() {
            return;
        }
        let prometheus = TestPrometheus::start("# TYPE m gauge\nm 1 1767268800\n# EOF\n");
        println!(
            "LEAKED {} {}",
            prometheus.url().trim_start_matches("http://"),
            prometheus.directory().display()
        );
        std::mem::forget(prometheus);
    }

    #[test]
    fn missing_prometheus_tools_panic_with_the_install_hint() {
        let output = std::process::Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--exact",
                "fixtures_current::launcher::leak_an_instance_when_asked",
                "--include-ignored",
            ])
            .env("TEST_PROMETHEUS_LEAK", "1")
            .env("PATH", "/nonexistent")
            .output()
            .expect("run the test binary");
        let printed = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(!output.status.success(), "{printed}");
        // The first tool each store needs: promtool for the Prometheus family, the server for VictoriaMetrics.
        let hint = match prometheus::Store::from_env() {
            prometheus::Store::VictoriaMetrics => "install VictoriaMetrics: run `make deps`",
            _ => "install Prometheus: run `make deps`",
        };
        assert!(printed.contains(hint), "{printed}");
        assert!(!printed.contains("LEAKED"), "{printed}");
    }

    #[test]
    fn an_instance_never_dropped_dies_with_its_test_binary() {
        let output = std::process::Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--exact",
                "fixtures_current::launcher::leak_an_instance_when_asked",
                "--include-ignored",
                "--nocapture",
            ])
            .env("TEST_PROMETHEUS_LEAK", "1")
            .output()
            .expect("run the test binary");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let line = stdout
            .lines()
            .find_map(|line| line.strip_prefix("LEAKED "))
            .unwrap_or_else(|| panic!("no LEAKED line in {stdout}"));
        let (address, directory) = line.split_once(' ').expect("address and directory");
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::path::Path::new(directory).exists()
            || std::net::TcpStream::connect(address).is_ok()
        {
            assert!(
                Instant::now() < deadline,
                "prometheus on {address} ({directory}) outlived its test binary"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

mod facts {
    use super::*;

    fn at_end(promql: &str) -> Option<f64> {
        prometheus::shared().query_value(promql, END)
    }

    #[test]
    fn each_scenario_has_its_pods_at_end() {
        for scenario in scenarios::SCENARIOS.iter().chain(scenarios::DECOYS.iter()) {
            let count = at_end(&format!("count(kube_pod_info{{{}}})", pods_of(scenario)));
            let expected = match *scenario {
                scenarios::OPS_GONE | scenarios::OPS_GHOST => None,
                _ => Some(scenario.pods.len() as f64),
            };
            assert_eq!(count, expected, "{}", scenario.target());
            for name in scenario.pods {
                assert!(name.starts_with(&format!("{}-", scenario.replica_set())));
                let suffix = &name[scenario.replica_set().len() + 1..];
                assert!(
                    suffix.len() == 5
                        && suffix
                            .bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
                    "{name}"
                );
            }
        }
        assert_eq!(
            at_end("count(kube_pod_info{namespace=\"shop\",created_by_name=\"web-6c8d7f9a1\"})"),
            Some(3.0)
        );
    }

    #[test]
    fn every_pod_has_every_family_at_end() {
        let families = [
            ("kube_pod_info", 1.0),
            ("kube_pod_created", 1.0),
            ("kube_pod_status_ready", 3.0),
            ("kube_pod_status_phase", 5.0),
            ("kube_pod_container_info", 1.0),
            ("kube_pod_container_status_restarts_total", 1.0),
            ("kube_pod_container_status_ready", 1.0),
        ];
        let scenario = scenarios::SHOP_WEB;
        for name in scenario.pods {
            for (family, series) in families {
                assert_eq!(
                    at_end(&format!("count({family}{{{}}})", pod(&scenario, name))),
                    Some(series),
                    "{family} of {name}"
                );
            }
        }
        // Ready and Running: exactly one condition and one phase set.
        assert_eq!(
            at_end(
                r#"sum(kube_pod_status_ready{namespace="shop",condition="true"} and on(pod) kube_pod_info{created_by_name="web-6c8d7f9a1"})"#
            ),
            Some(3.0)
        );
    }

    #[test]
    fn series_ages_at_end() {
        let age = |scenario: &Scenario, name: &str| {
            at_end(&format!(
                "time() - timestamp(kube_pod_info{{{}}})",
                pod(scenario, name)
            ))
        };
        assert_eq!(
            age(&scenarios::SHOP_WEB, scenarios::SHOP_WEB.pods[0]),
            Some(0.0)
        );
        for name in scenarios::OPS_STALE.pods {
            assert_eq!(age(&scenarios::OPS_STALE, name), Some(240.0), "{name}");
            assert_eq!(
                at_end(&format!(
                    "time() - max(timestamp(kube_pod_container_status_restarts_total{{{}}}))",
                    pod(&scenarios::OPS_STALE, name)
                )),
                Some(240.0)
            );
        }
        for name in scenarios::OPS_GONE.pods {
            assert_eq!(
                age(&scenarios::OPS_GONE, name),
                None,
                "{name} visible at END"
            );
            // It did exist, until END - 30 m.
            assert_eq!(
                prometheus::shared().query_value(
                    &format!(
                        "timestamp(kube_pod_info{{{}}})",
                        pod(&scenarios::OPS_GONE, name)
                    ),
                    END - 30 * MINUTE
                ),
                Some((END - 30 * MINUTE) as f64)
            );
            assert_eq!(
                at_end(&format!(
                    "count_over_time(kube_pod_info{{{}}}[29m59s])",
                    pod(&scenarios::OPS_GONE, name)
                )),
                None,
                "{name} has samples after END - 30 m"
            );
        }
        assert_eq!(
            at_end(r#"count({namespace="ops",pod=~"ghost-.*"} or {created_by_name=~"ghost-.*"})"#),
            None
        );
    }

    /// `max_over_time - min_over_time` of a pod's restart counter over `window` at END.
    fn restarts_in(scenario: &Scenario, name: &str, window: &str) -> Option<f64> {
        let series = format!(
            "kube_pod_container_status_restarts_total{{{}}}",
            pod(scenario, name)
        );
        at_end(&format!(
            "sum(max_over_time({series}[{window}]) - min_over_time({series}[{window}]))"
        ))
    }

    #[test]
    fn pay_api_crash_loops_at_the_end() {
        let crashing = scenarios::PAY_API_CRASHING_POD;
        let healthy = scenarios::PAY_API.pods[1];
        assert_eq!(restarts_in(&scenarios::PAY_API, crashing, "5m"), Some(3.0));
        assert_eq!(restarts_in(&scenarios::PAY_API, healthy, "5m"), Some(0.0));
        let not_ready = |at| {
            prometheus::shared().query_value(
                &format!(
                    r#"kube_pod_status_ready{{{},condition="false"}}"#,
                    pod(&scenarios::PAY_API, crashing)
                ),
                at,
            )
        };
        assert_eq!(not_ready(END), Some(1.0));
        assert_eq!(not_ready(END - 4 * MINUTE), Some(1.0));
        assert_eq!(not_ready(END - 4 * MINUTE - 30), Some(0.0));
        assert_eq!(
            at_end(&format!(
                r#"kube_pod_container_status_waiting_reason{{{},reason="CrashLoopBackOff"}}"#,
                pod(&scenarios::PAY_API, crashing)
            )),
            Some(1.0)
        );
        assert_eq!(
            at_end(
                r#"sum(kube_pod_status_ready{namespace="pay",pod=~"api-7f6e5d4c3-.*",condition="false"})"#
            ),
            Some(1.0)
        );
        assert_eq!(
            at_end(
                r#"count(kube_pod_container_info{namespace="pay",pod=~"api-7f6e5d4c3-.*",image_spec="registry.local/pay/api:2.0.1"})"#
            ),
            Some(2.0)
        );
    }

    #[test]
    fn pay_ledger_restarted_once_in_the_last_five_minutes() {
        let restarted = scenarios::PAY_LEDGER_RESTARTED_POD;
        assert_eq!(
            restarts_in(&scenarios::PAY_LEDGER, restarted, "5m"),
            Some(1.0)
        );
        assert_eq!(
            restarts_in(&scenarios::PAY_LEDGER, restarted, "10m"),
            Some(1.0)
        );
        assert_eq!(
            restarts_in(&scenarios::PAY_LEDGER, restarted, "1h"),
            Some(5.0)
        );
        assert_eq!(
            at_end(&format!(
                "kube_pod_container_status_restarts_total{{{}}}",
                pod(&scenarios::PAY_LEDGER, restarted)
            )),
            Some(5.0)
        );
        assert_eq!(
            at_end(
                r#"sum(kube_pod_status_ready{namespace="pay",pod=~"ledger-8a7b6c5d4-.*",condition="true"})"#
            ),
            Some(2.0)
        );
    }

    #[test]
    fn pay_worker_has_one_pod_not_ready_for_ten_minutes() {
        let selector = format!(
            r#"kube_pod_status_ready{{{},condition="false"}}"#,
            pod(&scenarios::PAY_WORKER, scenarios::PAY_WORKER_NOT_READY_POD)
        );
        assert_eq!(
            at_end(&format!("min_over_time({selector}[10m])")),
            Some(1.0)
        );
        assert_eq!(
            // 10m45s, not 10m30s: the sample at END − 10m30s (the last Ready one) is inside the range on every
            // store, whether its left boundary is closed (Prometheus 2) or open (Prometheus 3, VictoriaMetrics).
            at_end(&format!("min_over_time({selector}[10m45s])")),
            Some(0.0)
        );
        assert_eq!(
            at_end(
                r#"sum(kube_pod_status_ready{namespace="pay",pod=~"worker-9b8c7d6e5-.*",condition="false"})"#
            ),
            Some(1.0)
        );
        assert_eq!(
            restarts_in(
                &scenarios::PAY_WORKER,
                scenarios::PAY_WORKER_NOT_READY_POD,
                "1h"
            ),
            Some(0.0)
        );
    }

    /// The `image_spec` values of a scenario's containers at END, sorted.
    fn image_specs(scenario: &Scenario) -> Vec<String> {
        let mut specs: Vec<String> = prometheus::shared()
            .query(
                &format!(
                    r#"kube_pod_container_info{{namespace="{}",pod=~"{}-.*"}}"#,
                    scenario.namespace,
                    scenario.replica_set()
                ),
                END,
            )
            .into_iter()
            .map(|sample| sample.labels["image_spec"].clone())
            .collect();
        specs.sort();
        specs
    }

    #[test]
    fn media_images_are_what_the_table_says() {
        assert_eq!(
            image_specs(&scenarios::MEDIA_ENCODER),
            ["registry.local/media/encoder:latest"]
        );
        assert_eq!(
            image_specs(&scenarios::MEDIA_THUMBS),
            ["registry.local:5000/team/app"]
        );
        assert_eq!(
            image_specs(&scenarios::MEDIA_RESIZER),
            [
                "docker.io/envoyproxy/envoy:v1.30.1".to_owned(),
                format!(
                    "registry.local/media/resizer:latest@{}",
                    scenarios::RESIZER_DIGEST
                ),
            ]
        );
        assert_eq!(scenarios::RESIZER_DIGEST.len(), "sha256:".len() + 64);
        assert_eq!(image_specs(&scenarios::MEDIA_UPLOADER), ["nginx"]);
    }

    #[test]
    fn media_uploader_is_stuck_pulling() {
        let uploader = pod(
            &scenarios::MEDIA_UPLOADER,
            scenarios::MEDIA_UPLOADER.pods[0],
        );
        let info =
            prometheus::shared().query(&format!("kube_pod_container_info{{{uploader}}}"), END);
        assert_eq!(info.len(), 1);
        // kube-state-metrics exports image_id="" and container_id=""; Prometheus stores no empty label.
        assert_eq!(info[0].labels.get("image"), Some(&"nginx".to_owned()));
        assert_eq!(info[0].labels.get("image_id"), None);
        assert_eq!(info[0].labels.get("container_id"), None);
        assert_eq!(
            at_end(&format!(
                r#"kube_pod_container_status_waiting_reason{{{uploader},reason="ImagePullBackOff"}}"#
            )),
            Some(1.0)
        );
        assert_eq!(
            at_end(&format!(
                r#"kube_pod_status_phase{{{uploader},phase="Pending"}}"#
            )),
            Some(1.0)
        );
        assert_eq!(
            at_end(&format!(
                r#"kube_pod_status_ready{{{uploader},condition="false"}}"#
            )),
            Some(1.0)
        );
        assert_eq!(
            at_end(&format!("kube_pod_container_status_ready{{{uploader}}}")),
            Some(0.0)
        );
    }

    #[test]
    fn pay_young_was_born_three_minutes_before_end_with_two_restarts() {
        let young = pod(&scenarios::PAY_YOUNG, scenarios::PAY_YOUNG.pods[0]);
        assert_eq!(
            at_end(&format!("kube_pod_created{{{young}}}")),
            Some((END - 3 * MINUTE) as f64)
        );
        let restarts = format!("kube_pod_container_status_restarts_total{{{young}}}");
        assert_eq!(at_end(&format!("min_over_time({restarts}[5m])")), Some(2.0));
        // Samples from END - 3 m on: 7 of them.
        assert_eq!(
            at_end(&format!("count_over_time({restarts}[1h])")),
            Some(7.0)
        );
        assert_eq!(
            at_end(&format!("count_over_time(kube_pod_info{{{young}}}[1h])")),
            Some(7.0)
        );
    }

    #[test]
    fn decoys_exist_and_are_broken() {
        for decoy in scenarios::DECOYS {
            let pods = decoy.pods.len() as f64;
            let selector = format!(
                r#"namespace="{}",pod=~"{}-.*""#,
                decoy.namespace,
                decoy.replica_set()
            );
            assert_eq!(
                at_end(&format!(
                    // 5m15s: the sample at END − 5m is inside the range on every store (see
                    // tests/engine/store_differences.rs).
                    "sum(max_over_time(kube_pod_container_status_restarts_total{{{selector}}}[5m15s]) - min_over_time(kube_pod_container_status_restarts_total{{{selector}}}[5m15s]))"
                )),
                Some(5.0 * pods),
                "{}",
                decoy.target()
            );
            assert_eq!(
                at_end(&format!(
                    r#"sum(kube_pod_status_ready{{{selector},condition="false"}})"#
                )),
                Some(pods)
            );
            assert_eq!(
                at_end(&format!(
                    r#"count(kube_pod_container_info{{{selector},image_spec=~".*:latest"}})"#
                )),
                Some(pods)
            );
        }
        // The decoys do not share shop/web's canary ReplicaSet within the shop namespace.
        assert_eq!(
            at_end(
                r#"count(kube_pod_container_status_restarts_total{namespace="shop",pod=~"web-6c8d7f9a1-.*"})"#
            ),
            Some(3.0)
        );
        assert_eq!(
            restarts_in(&scenarios::SHOP_WEB, scenarios::SHOP_WEB.pods[0], "1h"),
            Some(0.0)
        );
    }
}
