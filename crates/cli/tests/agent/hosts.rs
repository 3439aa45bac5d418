//! Test hosts: separate network hosts on this machine for the end-to-end tests. Each host is a
//! network namespace with its own address (10.S.0.10+i) on a bridge the test creates (the
//! orchestrator stays in the machine's own namespace and reaches them over the bridge); where
//! namespaces cannot be made (not root), or with `FERRY_TEST_HOSTS=loopback`, each host is a
//! loopback address of its own instead (127.S.10+i.1), and the test says which it used.
//! Everything is removed when the `Hosts` value is dropped, even on a failure.

use std::process::Command;

/// How the hosts were made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// Network namespaces with veth pairs on a bridge.
    Namespaces,
    /// Loopback addresses (no cutting off: a host is "cut off" by stopping its processes).
    Loopback,
}

pub struct Hosts {
    pub isolation: Isolation,
    tag: String,
    /// The bridge's name: it names the subnet, so that a bridge a killed run left on that
    /// subnet (whatever its test) is removed before the subnet is used again.
    bridge: String,
    /// Per host: (namespace name, address).
    pub hosts: Vec<(String, String)>,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let o = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if o.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&o.stderr).trim()
        ))
    }
}

impl Hosts {
    /// `n` hosts. `tag` keeps the names of concurrent tests apart (a few letters).
    pub fn new(tag: &str, n: usize) -> Hosts {
        // Concurrent tests (threads of one process, or processes) get subnets and names of
        // their own.
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let k = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let slot = (std::process::id() as usize * 7 + k) % 150;
        let tag = format!("{}{slot}", &tag[..tag.len().min(3)]);
        let made = if std::env::var("FERRY_TEST_HOSTS").as_deref() == Ok("loopback") {
            Err("FERRY_TEST_HOSTS=loopback".to_string())
        } else {
            Self::namespaces(&tag, n, 100 + slot)
        };
        match made {
            Ok(h) => h,
            Err(why) => {
                eprintln!(
                    "test hosts: network namespaces unavailable ({why}); using loopback addresses"
                );
                let hosts = (0..n)
                    .map(|i| {
                        (
                            String::new(),
                            format!("127.{}.{}.1", 100 + slot % 100, i + 10),
                        )
                    })
                    .collect();
                Hosts {
                    isolation: Isolation::Loopback,
                    tag,
                    bridge: String::new(),
                    hosts,
                }
            }
        }
    }

    fn bridge(subnet: usize) -> String {
        format!("fbnet{subnet}")
    }

    fn namespaces(tag: &str, n: usize, subnet: usize) -> Result<Hosts, String> {
        let br = Self::bridge(subnet);
        let mut h = Hosts {
            isolation: Isolation::Namespaces,
            tag: tag.to_string(),
            bridge: br.clone(),
            hosts: Vec::new(),
        };
        // Leftovers of a test run that was killed before it could clean up.
        for i in 0..n {
            let _ = ip(&["link", "del", &format!("fo{tag}{i}")]);
            let _ = ip(&["netns", "del", &format!("fh{tag}-{i}")]);
        }
        let _ = ip(&["link", "del", &br]);
        ip(&["link", "add", &br, "type", "bridge"])?;
        let gw = format!("10.{subnet}.0.1/24");
        ip(&["addr", "add", &gw, "dev", &br])?;
        ip(&["link", "set", &br, "up"])?;
        for i in 0..n {
            let ns = format!("fh{tag}-{i}");
            let (outer, inner) = (format!("fo{tag}{i}"), format!("fi{tag}{i}"));
            let addr = format!("10.{subnet}.0.{}", i + 10);
            ip(&["netns", "add", &ns])?;
            h.hosts.push((ns.clone(), addr.clone()));
            ip(&[
                "link", "add", &outer, "type", "veth", "peer", "name", &inner,
            ])?;
            ip(&["link", "set", &inner, "netns", &ns])?;
            ip(&["link", "set", &outer, "master", &br])?;
            ip(&["link", "set", &outer, "up"])?;
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                &inner,
            ])?;
            ip(&["-n", &ns, "link", "set", &inner, "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(h)
    }

    pub fn addr(&self, i: usize) -> &str {
        &self.hosts[i].1
    }

    /// Cuts host `i` off the network (its link goes down), or back on.
    pub fn cut_off(&self, i: usize, off: bool) -> Result<(), String> {
        match self.isolation {
            Isolation::Namespaces => {
                let outer = format!("fo{}{i}", self.tag);
                ip(&["link", "set", &outer, if off { "down" } else { "up" }])
            }
            Isolation::Loopback => Err("loopback hosts cannot be cut off".into()),
        }
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        if self.isolation == Isolation::Namespaces {
            for (i, (ns, _)) in self.hosts.iter().enumerate() {
                let _ = ip(&["link", "del", &format!("fo{}{i}", self.tag)]);
                let _ = ip(&["netns", "del", ns]);
            }
            let _ = ip(&["link", "del", &self.bridge]);
        }
    }
}
