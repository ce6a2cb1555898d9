//! Unit tests of the vector bin packing module on small inline fixtures
//! whose optima are worked out by hand in the comments.

use std::collections::HashMap;
use std::path::PathBuf;

use super::*;
use crate::rng::SplitMix64;

/// 2-D, bins (10, 10): (6,4) and (4,6) pair up exactly, so 2 bins are
/// optimal and every heuristic should find them (all items have the same
/// sum and max, so each pairs the two shapes).
const PAIRS: &str = "2\n10 10\n2\n6 4 2\n4 6 2\n";

/// 1-D, bin 7, items 3 3 2 2 2 2: optimum 2 (3+2+2 twice), but greedy puts
/// 3+3 together first and ends with 3 bins (3+3, 2+2+2, 2).
const GREEDY_TRAP: &str = "1\n7\n2\n3 2\n2 4\n";

fn inst(name: &str, text: &str) -> Instance {
    parse(name, text).unwrap()
}

fn parse_err(text: &str) -> (usize, String) {
    match parse("t", text) {
        Err(VbpError::Parse { line, problem, .. }) => (line, problem),
        other => panic!("expected a parse error, got {other:?}"),
    }
}

fn temp_path(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("fairwatt-vbp-{}-{tag}", std::process::id()))
}

#[test]
fn parses_a_well_formed_instance() {
    let i = parse("class9_1_2_3", "3\n100 200 300\n2\n1 2 3 1\n100 200 300 4\n\n").unwrap();
    assert_eq!(i.capacities, vec![100, 200, 300]);
    assert_eq!(i.items, vec![(vec![1, 2, 3], 1), (vec![100, 200, 300], 4)]);
    assert_eq!((i.dims(), i.copies(), i.family(), i.set.as_str()), (3, 5, "class9", ""));
    assert_eq!(i.copy_types(), vec![0, 1, 1, 1, 1]);
}

#[test]
fn parse_errors_name_the_line_and_problem() {
    let cases: [(&str, usize, &str); 11] = [
        ("", 1, "before the number of dimensions"),
        ("0\n\n", 1, "zero dimensions"),
        ("2 3\n", 1, "number of dimensions alone"),
        ("x\n", 1, "not a non-negative integer"),
        ("2\n10\n", 2, "expected 2 capacities, found 1"),
        ("2\n10 0\n1\n1 1 1\n", 2, "capacity of dimension 2 is 0"),
        ("2\n10 10\n1\n1 1\n", 4, "3 columns), found 2"),
        ("2\n10 10\n1\n1 1.5 1\n", 4, "size \"1.5\" is not an integer"),
        ("2\n10 10\n1\n1 11 1\n", 4, "item larger than the bin: size 11 > capacity 10 in dimension 2"),
        ("2\n10 10\n2\n1 1 1\n", 4, "line 3 says 2 items, found 1"),
        ("2\n10 10\n1\n1 1 1\n2 2 1\n", 5, "line 3 says 1 items, found more"),
    ];
    for (text, line, needle) in cases {
        let (l, p) = parse_err(text);
        assert!(l == line && p.contains(needle), "{text:?}: got line {l}: {p}");
    }
    assert!(parse_err("1\n5\n1\n1 0\n").1.contains("multiplicity 0"));
    let msg = parse("some/file.vbp", "1\n5\n1\n6 1\n").unwrap_err().to_string();
    assert_eq!(msg, "some/file.vbp, line 4: item larger than the bin: size 6 > capacity 5 in dimension 1");
}

#[test]
fn every_heuristic_finds_the_known_optimum_of_pairs() {
    let i = inst("pairs", PAIRS);
    assert_eq!(trivial_lower_bound(&i), 2);
    for h in Heuristic::ALL {
        let p = pack(&i, h);
        check(&i, &p).unwrap();
        assert_eq!(p.bins, 2, "{h}");
    }
    // FFD keeps file order among equal items: (6,4) to bins 0 and 1, then (4,6) fills each.
    assert_eq!(pack(&i, Heuristic::Ffd(Measure::Sum)).assignment, vec![0, 1, 0, 1]);
}

#[test]
fn greedy_trap_costs_every_heuristic_one_bin() {
    let i = inst("trap", GREEDY_TRAP);
    assert_eq!(trivial_lower_bound(&i), 2); // 14 / 7
    for h in Heuristic::ALL {
        let p = pack(&i, h);
        check(&i, &p).unwrap();
        assert_eq!(p.bins, 3, "{h}");
    }
}

/// 1-D, bin 100: 51, 51 and -2, a Caprara-style triplet summing to exactly
/// 100, so one bin is optimal. Item-centric heuristics place both 51s
/// before the -2 and need two bins; bin-centric ones take the -2 once no
/// 51 fits, which makes room for the second.
#[test]
fn negative_sizes_are_packed_and_counted() {
    let i = inst("classC_3", "1\n100\n3\n51 1\n51 1\n-2 1\n");
    assert_eq!(trivial_lower_bound(&i), 1);
    for h in Heuristic::ALL {
        let p = pack(&i, h);
        check(&i, &p).unwrap();
        let expected = if matches!(h, Heuristic::DotProduct | Heuristic::L2) { 1 } else { 2 };
        assert_eq!(p.bins, expected, "{h}");
    }
    assert_eq!(trivial_lower_bound(&inst("neg", "1\n10\n1\n-5 3\n")), 0);
}

#[test]
fn measures_and_names() {
    let v = [0.5, 0.2, 0.4];
    assert!((Measure::Sum.of(&v) - 1.1).abs() < 1e-12);
    assert_eq!(Measure::Max.of(&v), 0.5);
    assert!((Measure::Product.of(&v) - 0.04).abs() < 1e-12);
    let names: Vec<String> = Heuristic::ALL.iter().map(|h| h.to_string()).collect();
    assert_eq!(names, ["FFD-sum", "FFD-max", "FFD-prod", "BFD-sum", "BFD-max", "BFD-prod", "DotProduct", "L2"]);
}

#[test]
fn the_trivial_bound_is_the_tightest_dimension() {
    // Dimension 1 needs ceil(12/10) = 2 bins, dimension 2 ceil(25/10) = 3.
    let i = inst("lb", "2\n10 10\n2\n3 5 3\n3 10 1\n");
    assert_eq!(trivial_lower_bound(&i), 3);
    assert_eq!(trivial_lower_bound(&inst("empty", "1\n5\n0\n")), 0);
    assert_eq!(pack(&inst("empty", "1\n5\n0\n"), Heuristic::DotProduct).bins, 0);
}

#[test]
fn checker_rejects_bad_packings() {
    let i = inst("pairs", PAIRS);
    let bad = |assignment: Vec<u32>, bins: usize| check(&i, &Packing { bins, assignment }).unwrap_err().to_string();
    assert!(bad(vec![0, 0, 1, 1], 2).contains("bin 0 holds 12 in dimension 1, capacity 10"));
    assert!(bad(vec![0, 1, 0], 2).contains("3 items assigned, the instance has 4"));
    assert!(bad(vec![0, 1, 0, 2], 2).contains("item 3 is in bin 2, but there are only 2 bins"));
    assert!(bad(vec![0, 2, 0, 2], 3).contains("bin 1 is empty"));
    check(&i, &Packing { bins: 4, assignment: vec![3, 2, 1, 0] }).unwrap();
}

#[test]
fn capacity_is_never_exceeded_on_random_instances() {
    let mut rng = SplitMix64::new(7);
    for round in 0..60 {
        let d = 1 + (rng.next_u64() % 5) as usize;
        let caps: Vec<u64> = (0..d).map(|_| 1 + rng.next_u64() % 1000).collect();
        let types = (rng.next_u64() % 40) as usize;
        let mut text = format!("{d}\n{}\n{types}\n", caps.iter().map(u64::to_string).collect::<Vec<_>>().join(" "));
        for _ in 0..types {
            // Whole dimensions, empty ones and small negative ones (as in
            // the Caprara triplets) are the edge cases.
            let sizes: Vec<String> = caps
                .iter()
                .map(|&c| {
                    let c = c as i64;
                    let r = rng.next_u64() as i64 & i64::MAX;
                    [0, c, r % (c + 1), -(r % (c / 10 + 1))][(rng.next_u64() % 4) as usize].to_string()
                })
                .collect();
            text += &format!("{} {}\n", sizes.join(" "), 1 + rng.next_u64() % 4);
        }
        let i = inst(&format!("random{round}"), &text);
        let r = solve(&i, None, &Heuristic::ALL).unwrap();
        for (h, bins) in &r.bins {
            assert!(*bins as u64 >= r.trivial_lb && *bins <= i.copies(), "{h} on {text}");
        }
    }
}

#[test]
fn an_oversize_hand_built_item_is_reported_not_looped_on() {
    let i = Instance { set: String::new(), name: "big".into(), capacities: vec![5], items: vec![(vec![6], 1)] };
    for h in Heuristic::ALL {
        assert!(check(&i, &pack(&i, h)).unwrap_err().to_string().contains("holds 6"), "{h}");
    }
}

#[test]
fn evaluate_reports_gaps_per_family() {
    let mut a = inst("classA_1", PAIRS);
    let mut b = inst("classA_2", GREEDY_TRAP);
    let mut c = inst("classB_1", GREEDY_TRAP);
    for i in [&mut a, &mut b, &mut c] {
        i.set = "Toy".into();
    }
    let known = HashMap::from([
        ("classA_1".to_string(), Known { lb: 2, opt: Some(2), best_overall: Some(2) }),
        ("classA_2".to_string(), Known { lb: 2, opt: Some(2), best_overall: Some(3) }),
        ("classB_1".to_string(), Known { lb: 2, opt: None, best_overall: None }),
    ]);
    let rows = evaluate_with(&[a.clone(), b, c], &known, &[Heuristic::Ffd(Measure::Sum), Heuristic::DotProduct]).unwrap();
    let names: Vec<(&str, &str)> = rows.iter().map(|r| (r.family.as_str(), r.heuristic.as_str())).collect();
    assert_eq!(names, [("classA", "FFD-sum"), ("classA", "DotProduct"), ("classA", "best-of"), ("classB", "FFD-sum"), ("classB", "DotProduct"), ("classB", "best-of")]);
    // classA: 2 bins of 2 (0 %) and 3 of 2 (50 %); the paper's best is 2 and 3.
    let r = &rows[0];
    assert_eq!((r.set.as_str(), r.instances, r.with_opt), ("Toy", 2, 2));
    assert_eq!((r.mean_gap_opt_pct, r.max_gap_opt_pct, r.solved_opt_share), (Some(25.0), Some(50.0), Some(0.5)));
    assert_eq!((r.mean_gap_lb_pct, r.max_gap_lb_pct, r.mean_gap_best_pct), (25.0, 50.0, Some(0.0)));
    // classB: no optimum known, only the bound: 3 bins against 2.
    let r = &rows[3];
    assert_eq!((r.with_opt, r.mean_gap_opt_pct, r.solved_opt_share, r.mean_gap_best_pct), (0, None, None, None));
    assert_eq!(r.mean_gap_lb_pct, 50.0);
    let table = markdown_table(&rows);
    assert!(table.contains("| Toy | classA | FFD-sum | 2 | 2 | 25.00 | 50.00 | 50 % | 25.00 | 50.00 | 0.00 |"), "{table}");
    assert!(table.contains("| Toy | classB | best-of | 1 | 0 | – | – | – | 50.00 | 50.00 | – |"), "{table}");

    let mut other = a.clone();
    other.set = "Other".into();
    assert!(matches!(evaluate(&[a, other], &known), Err(VbpError::MixedSets(..))));
}

#[test]
fn summary_by_set_and_best_of() {
    let i = inst("classA_1", GREEDY_TRAP);
    let r = solve(&i, Some(&Known { lb: 1, opt: None, best_overall: None }), &[Heuristic::L2, Heuristic::Bfd(Measure::Max)]).unwrap();
    assert_eq!((r.lower_bound(), best_of(&r), r.best()), (2, 3, Some((Heuristic::L2, 3))));
    let rows = summarise(&[r], false);
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|x| x.family == "all"));
}

#[test]
fn reads_the_summary_csv() {
    let p = temp_path("summary.csv");
    std::fs::write(&p, "instance_name\tLB\tOPT\tbest_overall\tbest_IC\nclass1_a\t10\t11\t11\t12\nclass1_b\t9\t-1\t10\t10\nclass1_c\t9\t\t\t\n").unwrap();
    let k = known(&p).unwrap();
    assert_eq!(k["class1_a"], Known { lb: 10, opt: Some(11), best_overall: Some(11) });
    assert_eq!(k["class1_b"], Known { lb: 9, opt: None, best_overall: Some(10) });
    assert_eq!(k["class1_c"], Known { lb: 9, opt: None, best_overall: None });

    std::fs::write(&p, "instance_name\tLB\tOPT\tbest_overall\nx\t10\tten\t11\n").unwrap();
    let e = known(&p).unwrap_err().to_string();
    assert!(e.contains("line 2: OPT \"ten\" is not a bin count"), "{e}");
    std::fs::write(&p, "instance_name\tLB\tOPT\nx\t10\t11\n").unwrap();
    assert!(known(&p).unwrap_err().to_string().contains("no best_overall column"));
    std::fs::remove_file(&p).unwrap();
}

#[test]
fn loads_a_tarball_and_a_directory() {
    // A tar.gz shaped like the benchmark's: a top folder, one folder per family.
    let root = temp_path("load");
    std::fs::create_dir_all(&root).unwrap();
    let tgz = root.join("Toy_instances.tar.gz");
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(std::fs::File::create(&tgz).unwrap(), flate2::Compression::fast()));
    for (path, text) in [("Toy_instances_multidim/classB/classB_1.vbp", GREEDY_TRAP), ("Toy_instances_multidim/classA/classA_1.vbp", PAIRS), ("Toy_instances_multidim/README", "not an instance")] {
        let mut header = tar::Header::new_gnu();
        header.set_size(text.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, path, text.as_bytes()).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap();
    let from_tar = load_tarball(&tgz).unwrap();
    let names: Vec<(&str, &str)> = from_tar.iter().map(|i| (i.set.as_str(), i.name.as_str())).collect();
    assert_eq!(names, [("Toy", "classA_1"), ("Toy", "classB_1")]);
    assert_eq!(from_tar[0].items, inst("x", PAIRS).items);

    let dir = root.join("Toy_instances_multidim");
    std::fs::create_dir_all(dir.join("classA")).unwrap();
    std::fs::write(dir.join("classA/classA_1.vbp"), PAIRS).unwrap();
    std::fs::write(dir.join("classA/notes.txt"), "ignored").unwrap();
    std::fs::write(dir.join("classB_1.vbp"), GREEDY_TRAP).unwrap();
    let from_dir = load_dir(&dir).unwrap();
    assert_eq!(from_dir, from_tar);

    std::fs::write(dir.join("classA/classA_bad.vbp"), "1\n5\n1\n6 1\n").unwrap();
    let e = load_dir(&dir).unwrap_err().to_string();
    assert!(e.contains("classA_bad.vbp, line 4: item larger than the bin"), "{e}");
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn set_names_come_from_file_names() {
    assert_eq!(set_name("New_instances.tar.gz"), "New");
    assert_eq!(set_name("Panigrahy_instances_multidim"), "Panigrahy");
    assert_eq!(set_name("mine.tar.gz"), "mine");
    assert_eq!(set_name("mine"), "mine");
}
