//! Alibaba `cluster-trace-gpu-v2023` (the FGD paper, USENIX ATC'23): a node
//! list and pod lists with *requests* and lifetimes, no utilisation series.
//!
//! Columns used (plain comma CSV with a header):
//! - nodes: `sn, cpu_milli, memory_mib, gpu, model` (empty `model` on CPU-only nodes);
//! - pods: `name, cpu_milli, memory_mib, num_gpu, gpu_milli, gpu_spec, qos,
//!   pod_phase, creation_time, deletion_time, scheduled_time`, times in
//!   seconds from the trace origin. `scheduled_time` is empty for pods that
//!   never ran (Pending); `gpu_spec` lists allowed GPU types joined by `|`.
//!
//! Columns are found by header name (see `open_csv`), so column order may change. Empty and
//! `nan` (the pandas export's missing value) both mean "absent".

use std::path::Path;

use super::{NodeSpec, PodRequest, TraceError, csv_line, open_csv};

/// Field accessor for one record, with errors naming the column.
struct Fields<'a, const N: usize> {
    rec: &'a csv::StringRecord,
    idx: &'a [usize; N],
    cols: &'a [&'a str; N],
}

impl<const N: usize> Fields<'_, N> {
    fn opt_str(&self, k: usize) -> Option<&str> {
        self.rec
            .get(self.idx[k])
            .filter(|s| !s.is_empty() && !s.eq_ignore_ascii_case("nan"))
    }

    fn opt<T: std::str::FromStr>(&self, k: usize) -> Result<Option<T>, String> {
        self.opt_str(k)
            .map(|s| {
                s.parse()
                    .map_err(|_| format!("bad `{}`: {s:?}", self.cols[k]))
            })
            .transpose()
    }

    fn req<T: std::str::FromStr>(&self, k: usize) -> Result<T, String> {
        self.opt(k)?
            .ok_or_else(|| format!("missing `{}`", self.cols[k]))
    }
}

const NODE_COLS: [&str; 5] = ["sn", "cpu_milli", "memory_mib", "gpu", "model"];

/// Loads the node list. Nodes define the cluster, so any bad line is an
/// error rather than a silently smaller cluster.
pub fn load_nodes(path: &Path) -> Result<Vec<NodeSpec>, TraceError> {
    let (mut rdr, idx) = open_csv(path, b',', NODE_COLS)?;
    let mut nodes = Vec::new();
    for rec in rdr.records() {
        let rec = rec.map_err(|e| TraceError::Parse {
            path: path.to_path_buf(),
            line: csv_line(e.position()),
            message: e.to_string(),
        })?;
        let f = Fields {
            rec: &rec,
            idx: &idx,
            cols: &NODE_COLS,
        };
        let node = (|| {
            Ok::<_, String>(NodeSpec {
                id: f.req(0)?,
                cpu_milli: f.req(1)?,
                memory_mib: f.req(2)?,
                gpus: f.req(3)?,
                gpu_model: f.opt_str(4).map(str::to_string),
            })
        })()
        .map_err(|message| TraceError::Parse {
            path: path.to_path_buf(),
            line: csv_line(rec.position()),
            message,
        })?;
        nodes.push(node);
    }
    if nodes.is_empty() {
        return Err(TraceError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(nodes)
}

/// Pod-list lines left out: (1-based line number, reason).
pub type SkippedLines = Vec<(usize, String)>;

const POD_COLS: [&str; 11] = [
    "name",
    "cpu_milli",
    "memory_mib",
    "num_gpu",
    "gpu_milli",
    "gpu_spec",
    "qos",
    "pod_phase",
    "creation_time",
    "deletion_time",
    "scheduled_time",
];

/// Loads a pod list; malformed lines are returned as (line, reason) instead
/// of failing, because one broken pod should not void a replay. A missing
/// column or a file without any good pod is an error.
pub fn load_pods(path: &Path) -> Result<(Vec<PodRequest>, SkippedLines), TraceError> {
    let (mut rdr, idx) = open_csv(path, b',', POD_COLS)?;
    let (mut pods, mut skipped) = (Vec::new(), Vec::new());
    for rec in rdr.records() {
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                skipped.push((csv_line(e.position()), e.to_string()));
                continue;
            }
        };
        let f = Fields {
            rec: &rec,
            idx: &idx,
            cols: &POD_COLS,
        };
        let pod = (|| {
            let pod = PodRequest {
                id: f.req(0)?,
                cpu_milli: f.req(1)?,
                memory_mib: f.req(2)?,
                gpus: f.req(3)?,
                gpu_milli: f.opt(4)?.unwrap_or(0),
                gpu_model: f.opt_str(5).map(str::to_string),
                qos: f.opt_str(6).unwrap_or_default().to_string(),
                phase: f.opt_str(7).unwrap_or_default().to_string(),
                created_s: f.req(8)?,
                deleted_s: f.opt(9)?,
                scheduled_s: f.opt(10)?,
            };
            if pod.gpu_milli > 1000 {
                return Err(format!("gpu_milli {} above one GPU", pod.gpu_milli));
            }
            if pod.deleted_s.is_some_and(|d| d < pod.created_s) {
                return Err("deletion_time before creation_time".to_string());
            }
            Ok(pod)
        })();
        match pod {
            Ok(p) => pods.push(p),
            Err(reason) => skipped.push((csv_line(rec.position()), reason)),
        }
    }
    if pods.is_empty() {
        return Err(TraceError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok((pods, skipped))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{real_data, scratch_dir};

    #[test]
    fn parses_nodes_exactly() {
        let d = scratch_dir("ali-nodes");
        let p = d.join("nodes.csv");
        std::fs::write(&p, "sn,cpu_milli,memory_mib,gpu,model\nn0,32000,262144,0,\nn1,96000,786432,8,V100M32\nn2,64000,1024,2,nan\n").unwrap();
        let n = load_nodes(&p).unwrap();
        assert_eq!(n.len(), 3);
        assert_eq!(
            n[0],
            NodeSpec {
                id: "n0".into(),
                cpu_milli: 32000,
                memory_mib: 262144,
                gpus: 0,
                gpu_model: None
            }
        );
        assert_eq!(n[1].gpu_model.as_deref(), Some("V100M32"));
        assert_eq!((n[2].gpus, n[2].gpu_model.as_deref()), (2, None));
        std::fs::write(
            &p,
            "sn,cpu_milli,memory_mib,gpu,model\nn0,32000,262144,0,\nn1,lots,1,0,\n",
        )
        .unwrap();
        let e = load_nodes(&p).unwrap_err();
        assert!(matches!(e, TraceError::Parse { line: 3, .. }), "{e}");
        std::fs::write(&p, "sn,cpu_milli,memory_mib,gpu\n").unwrap();
        assert!(matches!(
            load_nodes(&p),
            Err(TraceError::MissingColumn { .. })
        ));
        std::fs::write(&p, "sn,cpu_milli,memory_mib,gpu,model\n").unwrap();
        assert!(matches!(load_nodes(&p), Err(TraceError::Empty { .. })));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn parses_pods_and_skips_bad_lines() {
        let d = scratch_dir("ali-pods");
        let p = d.join("pods.csv");
        std::fs::write(
            &p,
            "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time\n\
             p0,12000,16384,1,460,,LS,Running,0,12537496,0\n\
             p1,16000,32768,1,1000,V100M16|V100M32,BE,Pending,100,200,\n\
             p2,x,1,0,0,,LS,Running,0,1,0\n\
             p3,1,1,0,0,,LS,Running,50,10,50\n\
             p4,1,1,1,1500,,LS,Running,0,10,0\n\
             p5,4000,8192,0,0,nan,Burstable,Failed,7,,7\n",
        )
        .unwrap();
        let (pods, skipped) = load_pods(&p).unwrap();
        assert_eq!(pods.len(), 3);
        assert_eq!(
            pods[0],
            PodRequest {
                id: "p0".into(),
                cpu_milli: 12000,
                memory_mib: 16384,
                gpus: 1,
                gpu_milli: 460,
                gpu_model: None,
                created_s: 0,
                deleted_s: Some(12537496),
                scheduled_s: Some(0),
                qos: "LS".into(),
                phase: "Running".into(),
            }
        );
        assert_eq!(pods[1].gpu_model.as_deref(), Some("V100M16|V100M32"));
        assert_eq!(
            (pods[1].scheduled_s, pods[1].phase.as_str()),
            (None, "Pending")
        );
        assert_eq!(
            (pods[2].deleted_s, pods[2].gpu_model.as_deref()),
            (None, None)
        );
        let lines: Vec<_> = skipped.iter().map(|s| s.0).collect();
        assert_eq!(lines, [4, 5, 6]);
        assert!(skipped[0].1.contains("cpu_milli"));
        assert!(skipped[1].1.contains("before creation"));
        assert!(skipped[2].1.contains("gpu_milli"));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn real_cluster_loads() {
        let Some(dir) = real_data("alibaba-gpu-v2023") else {
            return;
        };
        let nodes = load_nodes(&dir.join("openb_node_list_all_node.csv")).unwrap();
        assert_eq!(nodes.len(), 1523);
        assert_eq!(nodes.iter().filter(|n| n.gpus > 0).count(), 1213);
        assert!(nodes.iter().all(|n| (n.gpus > 0) == n.gpu_model.is_some()));
        let (pods, skipped) = load_pods(&dir.join("openb_pod_list_default.csv")).unwrap();
        assert!(skipped.is_empty(), "{skipped:?}");
        assert_eq!(pods.len(), 8152);
        assert_eq!(pods.iter().filter(|p| p.scheduled_s.is_none()).count(), 897);
        assert!(pods.iter().all(|p| p.deleted_s.is_some() && p.gpus <= 8));
    }
}
