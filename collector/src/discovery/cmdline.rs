//! Recognises QEMU/KVM processes by their command line and reads what the
//! command line says about the VM: name, UUID, vCPUs, memory and the PCI
//! devices passed through with VFIO.
//!
//! Option values use QEMU's `key=value,key=value` syntax, where the first
//! item may omit its key (`-name web,debug-threads=on`) and `,,` is a literal
//! comma; newer libvirt passes `-device` as JSON, which is handled too.

/// What a QEMU command line says about its VM; `None` where it says nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QemuCmdline {
    pub name: Option<String>,
    /// Lowercase.
    pub uuid: Option<String>,
    pub vcpus: Option<u32>,
    pub memory_mib: Option<u64>,
    /// PCI addresses of `vfio-pci` devices, `0000:3b:00.0`, lowercase.
    pub vfio_pci: Vec<String>,
}

/// True when argv\[0\] names a QEMU system emulator.
pub fn is_qemu_argv0(argv0: &str) -> bool {
    let base = argv0.rsplit('/').next().unwrap_or(argv0);
    base.starts_with("qemu-system-") || base == "qemu-kvm" || base == "kvm"
}

/// Parses a raw `/proc/PID/cmdline` (NUL-separated); `None` if the process is not QEMU.
pub fn parse_cmdline(raw: &[u8]) -> Option<QemuCmdline> {
    let raw = raw.strip_suffix(b"\0").unwrap_or(raw);
    let mut args = raw.split(|&b| b == 0).map(String::from_utf8_lossy);
    let argv0 = args.next()?;
    if !is_qemu_argv0(&argv0) {
        return None;
    }
    let mut out = QemuCmdline::default();
    while let Some(arg) = args.next() {
        let Some(opt) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else { continue };
        let (opt, inline) = match opt.split_once('=') {
            Some((o, v)) => (o, Some(v.to_string())),
            None => (opt, None),
        };
        if !matches!(opt, "name" | "uuid" | "smp" | "m" | "device") {
            continue;
        }
        let Some(value) = inline.or_else(|| args.next().map(|v| v.into_owned())) else { break };
        match opt {
            "name" => out.name = opt_value(&value, "guest").filter(|n| !n.is_empty()),
            "uuid" => out.uuid = normalize_uuid(&value),
            "smp" => out.vcpus = parse_smp(&value),
            "m" => out.memory_mib = opt_value(&value, "size").and_then(|s| parse_size_mib(&s)),
            _ => out.vfio_pci.extend(parse_vfio_device(&value)),
        }
    }
    out.vfio_pci.sort();
    out.vfio_pci.dedup();
    Some(out)
}

/// Splits a QEMU option string into `(key, value)` pairs; the first item
/// without `=` gets `implied` as its key.
pub fn parse_opts(s: &str, implied: &str) -> Vec<(String, String)> {
    let mut items = vec![String::new()];
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ',' && chars.peek() != Some(&',') {
            items.push(String::new());
            continue;
        }
        if c == ',' {
            chars.next();
        }
        if let Some(last) = items.last_mut() {
            last.push(c);
        }
    }
    items
        .into_iter()
        .enumerate()
        .filter_map(|(i, item)| match item.split_once('=') {
            Some((k, v)) => Some((k.to_string(), v.to_string())),
            None if i == 0 => Some((implied.to_string(), item)),
            None if item.is_empty() => None,
            // A bare word after the first item is a boolean flag: QEMU reads `key` as `key=on`.
            None => Some((item, "on".to_string())),
        })
        .collect()
}

fn opt_value(s: &str, key: &str) -> Option<String> {
    parse_opts(s, key).into_iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// `cpus=` (or the implied first value); failing that, the product of the
/// topology QEMU would derive it from.
fn parse_smp(s: &str) -> Option<u32> {
    let opts = parse_opts(s, "cpus");
    let get = |k: &str| opts.iter().find(|(key, _)| key == k).and_then(|(_, v)| v.parse::<u32>().ok());
    if let Some(n) = get("cpus").filter(|&n| n > 0) {
        return Some(n);
    }
    let topo = ["drawers", "books", "sockets", "dies", "clusters", "cores", "threads"];
    if !topo.iter().any(|k| get(k).is_some()) {
        return None;
    }
    topo.iter().try_fold(1u32, |acc, k| acc.checked_mul(get(k).unwrap_or(1))).filter(|&n| n > 0)
}

/// A QEMU memory size in MiB: a bare number is MiB; suffixes B, K, M, G, T,
/// P, E (either case, binary multiples) and fractions (`1.5G`) are allowed.
pub fn parse_size_mib(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (num, suffix) = s.split_at(split);
    let shift: u32 = match suffix.to_ascii_lowercase().as_str() {
        "" | "m" => 20,
        "b" => 0,
        "k" => 10,
        "g" => 30,
        "t" => 40,
        "p" => 50,
        "e" => 60,
        _ => return None,
    };
    let bytes = if num.contains('.') {
        let v: f64 = num.parse().ok()?;
        let b = v * (1u64 << shift) as f64;
        if !b.is_finite() || b < 0.0 || b >= u64::MAX as f64 {
            return None;
        }
        b as u64
    } else {
        num.parse::<u64>().ok()?.checked_mul(1u64 << shift)?
    };
    Some(bytes >> 20)
}

/// Lowercase canonical UUID, or `None` if `s` is not one.
pub fn normalize_uuid(s: &str) -> Option<String> {
    let s = s.trim();
    let groups: Vec<&str> = s.split('-').collect();
    let lens = [8, 4, 4, 4, 12];
    let ok = groups.len() == 5 && groups.iter().zip(lens).all(|(g, l)| g.len() == l && g.bytes().all(|b| b.is_ascii_hexdigit()));
    ok.then(|| s.to_ascii_lowercase())
}

/// The host PCI address of a `-device vfio-pci,...` (QEMU opts or JSON).
fn parse_vfio_device(value: &str) -> Option<String> {
    let (driver, host, sysfsdev) = if value.trim_start().starts_with('{') {
        let v: serde_json::Value = serde_json::from_str(value).ok()?;
        let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
        (s("driver"), s("host"), s("sysfsdev"))
    } else {
        let opts = parse_opts(value, "driver");
        let s = |k: &str| opts.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
        (s("driver"), s("host"), s("sysfsdev"))
    };
    if driver.as_deref() != Some("vfio-pci") {
        return None;
    }
    let addr = host.or_else(|| sysfsdev.and_then(|p| p.trim_end_matches('/').rsplit('/').next().map(str::to_string)))?;
    normalize_pci(&addr)
}

/// `3b:00.0` or `0000:3B:00.0` → `0000:3b:00.0`.
pub fn normalize_pci(s: &str) -> Option<String> {
    let s = s.trim().to_ascii_lowercase();
    let full = if s.matches(':').count() == 1 { format!("0000:{s}") } else { s };
    let (dom, rest) = full.split_once(':')?;
    let (bus, rest) = rest.split_once(':')?;
    let (slot, func) = rest.split_once('.')?;
    let hex = |x: &str, n: usize| x.len() == n && x.bytes().all(|b| b.is_ascii_hexdigit());
    (hex(dom, 4) && hex(bus, 2) && hex(slot, 2) && hex(func, 1)).then_some(full)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cmd(args: &[&str]) -> Vec<u8> {
        let mut v = args.join("\0").into_bytes();
        v.push(0);
        v
    }

    #[test]
    fn recognises_qemu_binaries() {
        assert!(is_qemu_argv0("/usr/bin/qemu-system-x86_64"));
        assert!(is_qemu_argv0("qemu-system-aarch64"));
        assert!(is_qemu_argv0("/usr/libexec/qemu-kvm"));
        assert!(is_qemu_argv0("kvm"));
        assert!(!is_qemu_argv0("/usr/bin/qemu-img"));
        assert!(!is_qemu_argv0("/usr/sbin/libvirtd"));
        assert_eq!(parse_cmdline(&cmd(&["bash", "-name", "x"])), None);
        assert_eq!(parse_cmdline(b""), None);
    }

    #[test]
    fn libvirt_style() {
        let c = parse_cmdline(&cmd(&[
            "/usr/bin/qemu-system-x86_64", "-name", "guest=web-1,debug-threads=on", "-S",
            "-uuid", "0B0C5A46-6C1F-4D1E-9A3F-2F1D7F3C9E01", "-m", "size=4194304k",
            "-smp", "2,sockets=2,cores=1,threads=1",
            "-device", "{\"driver\":\"vfio-pci\",\"host\":\"0000:3B:00.0\",\"id\":\"hostdev0\"}",
        ]))
        .unwrap();
        assert_eq!(c.name.as_deref(), Some("web-1"));
        assert_eq!(c.uuid.as_deref(), Some("0b0c5a46-6c1f-4d1e-9a3f-2f1d7f3c9e01"));
        assert_eq!((c.vcpus, c.memory_mib), (Some(2), Some(4096)));
        assert_eq!(c.vfio_pci, vec!["0000:3b:00.0".to_string()]);
    }

    #[test]
    fn hand_written_style() {
        let c = parse_cmdline(&cmd(&["qemu-kvm", "--name", "db,,primary", "-m", "4G", "-smp", "cpus=8,maxcpus=16", "-device", "vfio-pci,host=5e:00.0"])).unwrap();
        assert_eq!(c.name.as_deref(), Some("db,primary"));
        assert_eq!(c.uuid, None);
        assert_eq!((c.vcpus, c.memory_mib), (Some(8), Some(4096)));
        assert_eq!(c.vfio_pci, vec!["0000:5e:00.0".to_string()]);
        let c = parse_cmdline(&cmd(&["kvm", "-name", "plain", "-m", "512", "-smp", "sockets=2,cores=4,threads=2"])).unwrap();
        assert_eq!((c.name.as_deref(), c.vcpus, c.memory_mib), (Some("plain"), Some(16), Some(512)));
        let c = parse_cmdline(&cmd(&["qemu-system-x86_64", "-m", "1.5G", "-uuid", "not-a-uuid", "-name"])).unwrap();
        assert_eq!((c.name, c.uuid, c.vcpus, c.memory_mib), (None, None, None, Some(1536)));
    }

    #[test]
    fn opts_syntax() {
        assert_eq!(parse_opts("a,b=c,,d,e", "k"), vec![("k".into(), "a".into()), ("b".into(), "c,d".into()), ("e".into(), "on".into())]);
        assert_eq!(parse_opts("", "k"), vec![("k".into(), String::new())]);
        assert_eq!(parse_size_mib("size=1"), None);
        assert_eq!(parse_size_mib("2048M"), Some(2048));
        assert_eq!(parse_size_mib("1t"), Some(1 << 20));
        assert_eq!(parse_size_mib("99999999999999999999G"), None);
        assert_eq!(normalize_pci("0000:3b:00.0x"), None);
    }

    proptest! {
        #[test]
        fn never_panics(args in proptest::collection::vec("\\PC{0,20}", 0..8), s in "\\PC{0,40}") {
            let mut all = vec!["qemu-system-x86_64".to_string()];
            all.extend(args);
            let _ = parse_cmdline(all.join("\0").as_bytes());
            let _ = parse_opts(&s, "k");
            let _ = parse_size_mib(&s);
            let _ = parse_smp(&s);
            let _ = normalize_pci(&s);
            let _ = parse_vfio_device(&s);
        }

        #[test]
        fn any_bytes(raw in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut v = b"qemu-kvm\0".to_vec();
            v.extend(raw);
            let _ = parse_cmdline(&v);
        }
    }
}
