//! Reads libvirt domain XML: the persistent definition (`/etc/libvirt/qemu/NAME.xml`)
//! or the live state (`/run/libvirt/qemu/NAME.xml`, a `<domstatus>` wrapping
//! the `<domain>`), for the VM's UUID, flavor, PCI passthrough devices and
//! the fairwatt metadata element that names the tenant.

use super::cmdline::normalize_uuid;

/// The XML namespace of fairwatt's `<metadata>` element.
pub const METADATA_NS: &str = "https://fairwatt.dev/xmlns/vm/1";

/// What a domain XML says; `None` where it says nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DomainXml {
    pub name: Option<String>,
    /// Lowercase.
    pub uuid: Option<String>,
    /// Active vCPUs: `<vcpu current=N>` if set, else the element's value.
    pub vcpus: Option<u32>,
    pub memory_mib: Option<u64>,
    /// `<fairwatt:tenant>`, unvalidated.
    pub tenant: Option<String>,
    /// `<fairwatt:gpus>`.
    pub gpus: Option<u32>,
    /// Host PCI addresses of `<hostdev mode='subsystem' type='pci'>`, lowercase, sorted.
    pub hostdev_pci: Vec<String>,
}

/// Parses a domain or domstatus document; the error says what is wrong (the caller adds the file).
pub fn parse_domain_xml(text: &str) -> Result<DomainXml, String> {
    let doc = roxmltree::Document::parse(text).map_err(|e| format!("not well-formed XML: {e}"))?;
    let root = doc.root_element();
    let domain = if root.has_tag_name("domain") {
        root
    } else {
        root.descendants().find(|n| n.has_tag_name("domain")).ok_or_else(|| format!("no <domain> element (root is <{}>)", root.tag_name().name()))?
    };
    let child = |name: &str| domain.children().find(|n| n.is_element() && n.tag_name().name() == name && n.tag_name().namespace().is_none());
    let text_of = |n: roxmltree::Node| n.text().map(str::trim).unwrap_or("").to_string();

    let mut out = DomainXml { name: child("name").map(text_of).filter(|s| !s.is_empty()), ..Default::default() };
    if let Some(u) = child("uuid") {
        let t = text_of(u);
        out.uuid = Some(normalize_uuid(&t).ok_or_else(|| format!("<uuid> {t:?} is not a UUID"))?);
    }
    if let Some(v) = child("vcpu") {
        let raw = v.attribute("current").map(str::to_string).unwrap_or_else(|| text_of(v));
        out.vcpus = Some(raw.trim().parse().map_err(|_| format!("<vcpu> {raw:?} is not a count"))?);
    }
    if let Some(m) = child("memory") {
        let t = text_of(m);
        let unit = m.attribute("unit").unwrap_or("KiB");
        out.memory_mib = Some(memory_mib(&t, unit).ok_or_else(|| format!("<memory unit={unit:?}> {t:?} is not a size"))?);
    }
    if let Some(meta) = child("metadata") {
        let ours = meta.children().find(|n| n.is_element() && n.tag_name().namespace() == Some(METADATA_NS) && n.tag_name().name() == "vm");
        if let Some(vm) = ours {
            let field = |name: &str| vm.children().find(|n| n.is_element() && n.tag_name().namespace() == Some(METADATA_NS) && n.tag_name().name() == name);
            out.tenant = field("tenant").map(text_of).filter(|s| !s.is_empty());
            if let Some(g) = field("gpus") {
                let t = text_of(g);
                out.gpus = Some(t.parse().map_err(|_| format!("<fairwatt:gpus> {t:?} is not a count"))?);
            }
        }
    }
    if let Some(devices) = child("devices") {
        for hd in devices.children().filter(|n| n.has_tag_name("hostdev")) {
            if hd.attribute("mode") != Some("subsystem") || hd.attribute("type") != Some("pci") {
                continue;
            }
            // The hostdev's own <address> is where the guest sees it; the
            // host device is the one under <source>.
            let Some(addr) = hd.children().find(|n| n.has_tag_name("source")).and_then(|s| s.children().find(|n| n.has_tag_name("address"))) else {
                continue;
            };
            out.hostdev_pci.push(pci_address(&addr).ok_or("<hostdev> <source><address> lacks a valid domain/bus/slot/function")?);
        }
    }
    out.hostdev_pci.sort();
    out.hostdev_pci.dedup();
    Ok(out)
}

fn pci_address(addr: &roxmltree::Node) -> Option<String> {
    let num = |attr: &str, max: u32| -> Option<u32> {
        let v = addr.attribute(attr)?;
        let n = match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => v.parse().ok()?,
        };
        (n <= max).then_some(n)
    };
    let domain = num("domain", 0xffff).unwrap_or(0);
    Some(format!("{:04x}:{:02x}:{:02x}.{:x}", domain, num("bus", 0xff)?, num("slot", 0x1f)?, num("function", 7)?))
}

/// libvirt's `<memory>` units (formatdomain.html#memory-allocation) to MiB.
fn memory_mib(value: &str, unit: &str) -> Option<u64> {
    let n: u64 = value.parse().ok()?;
    let bytes_per: u64 = match unit {
        "b" | "bytes" => 1,
        "KB" => 1000,
        "k" | "KiB" => 1 << 10,
        "MB" => 1_000_000,
        "M" | "MiB" => 1 << 20,
        "GB" => 1_000_000_000,
        "G" | "GiB" => 1 << 30,
        "TB" => 1_000_000_000_000,
        "T" | "TiB" => 1 << 40,
        _ => return None,
    };
    Some(n.checked_mul(bytes_per)? >> 20)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const XML: &str = r#"<domain type='kvm' id='1'>
  <name>train-7</name>
  <uuid>7A5C0D2E-1111-4222-8333-944455556666</uuid>
  <metadata>
    <other:thing xmlns:other="https://example.com/x"><other:tenant>nope</other:tenant></other:thing>
    <fw:vm xmlns:fw="https://fairwatt.dev/xmlns/vm/1"><fw:tenant> acme </fw:tenant><fw:gpus>2</fw:gpus></fw:vm>
  </metadata>
  <memory unit='GiB'>16</memory>
  <vcpu placement='static' current='4'>8</vcpu>
  <devices>
    <hostdev mode='subsystem' type='pci' managed='yes'>
      <source><address domain='0x0000' bus='0x3B' slot='0x00' function='0x0'/></source>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x05' function='0x0'/>
    </hostdev>
    <hostdev mode='subsystem' type='usb'><source><vendor id='0x1'/></source></hostdev>
  </devices>
</domain>"#;

    #[test]
    fn domain_with_metadata_and_hostdev() {
        let d = parse_domain_xml(XML).unwrap();
        assert_eq!(d.name.as_deref(), Some("train-7"));
        assert_eq!(d.uuid.as_deref(), Some("7a5c0d2e-1111-4222-8333-944455556666"));
        assert_eq!((d.vcpus, d.memory_mib, d.gpus), (Some(4), Some(16384), Some(2)));
        assert_eq!(d.tenant.as_deref(), Some("acme"));
        assert_eq!(d.hostdev_pci, vec!["0000:3b:00.0".to_string()]);
    }

    #[test]
    fn domstatus_and_defaults() {
        let live = format!("<domstatus state='running' pid='4242'><monitor path='/x'/>{}</domstatus>", XML.replace("<memory unit='GiB'>16</memory>", "<memory>2097152</memory>"));
        let d = parse_domain_xml(&live).unwrap();
        assert_eq!(d.memory_mib, Some(2048));
        let bare = parse_domain_xml("<domain><name>x</name></domain>").unwrap();
        assert_eq!((bare.uuid, bare.tenant, bare.gpus, bare.hostdev_pci.len()), (None, None, None, 0));
    }

    #[test]
    fn errors_say_what() {
        assert!(parse_domain_xml("<domain>").unwrap_err().contains("well-formed"));
        assert!(parse_domain_xml("<other/>").unwrap_err().contains("<domain>"));
        assert!(parse_domain_xml("<domain><vcpu>many</vcpu></domain>").unwrap_err().contains("vcpu"));
        assert!(parse_domain_xml("<domain><memory unit='parsec'>1</memory></domain>").unwrap_err().contains("memory"));
        let bad_gpus = XML.replace("<fw:gpus>2", "<fw:gpus>-1");
        assert!(parse_domain_xml(&bad_gpus).unwrap_err().contains("gpus"));
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,300}") {
            let _ = parse_domain_xml(&s);
            let _ = parse_domain_xml(&format!("<domain>{s}</domain>"));
        }
    }
}
