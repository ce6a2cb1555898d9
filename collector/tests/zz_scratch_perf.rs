use std::os::unix::fs::FileExt;
use std::process::{Command, Stdio};
fn cpu() -> f64 { let mut r: libc::rusage = unsafe { std::mem::zeroed() }; unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut r) }; (r.ru_utime.tv_sec as f64 + r.ru_utime.tv_usec as f64 * 1e-6) + (r.ru_stime.tv_sec as f64 + r.ru_stime.tv_usec as f64 * 1e-6) }
fn bench(name: &str, n: usize, mut f: impl FnMut()) { let t = cpu(); for _ in 0..n { f() } println!("{name}: {:.2} us", (cpu()-t)/n as f64*1e6); }
#[test]
fn scratch() {
    let mut c = Command::new("qemu-system-x86_64").args(["-name","guest=perf,debug-threads=on","-m","64","-smp","2","-machine","pc","-accel","tcg","-nographic","-display","none","-nodefaults","-serial","none","-monitor","none"]).stdin(Stdio::null()).spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let pid = c.id();
    let n = 5000;
    let mut buf = vec![0u8; 4096];
    for f in ["stat", "io", "task/PLUS2/stat", "schedstat", "statm"] {
        let path = format!("/proc/{pid}/{}", f.replace("PLUS2", &(pid+2).to_string()));
        let file = std::fs::File::open(&path).unwrap();
        bench(&format!("pread {f}"), n, || { file.read_at(&mut buf, 0).unwrap(); });
        bench(&format!("open+read {f}"), n, || { std::fs::read(&path).unwrap(); });
    }
    let r = fairwatt_collector::proc::ProcReader::new(std::path::Path::new("/proc"));
    bench("ProcReader.read", n, || { r.read(pid).unwrap(); });
    bench("readdir", n, || { std::fs::read_dir(format!("/proc/{pid}/task")).unwrap().count(); });
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    bench("parse only", n, || { std::hint::black_box(fairwatt_collector::proc::stat::parse_stat(&s).unwrap()); });
    c.kill().unwrap(); c.wait().unwrap();
}
