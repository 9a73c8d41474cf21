//! Who is on the other end of a worker connection, from the kernel's view.
//!
//! A worker id travels on the worker's command line, which every local user
//! can read in `/proc/<pid>/cmdline`, so the id alone proves nothing. Before a
//! stream is admitted the host looks the peer's TCP socket up in
//! `/proc/net/tcp{,6}` (by its address and port) and then looks for that
//! socket among the open files of the process it launched for the id, or of
//! one of its descendants. Published workers need to send nothing extra.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The answer for one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PeerCheck {
    /// The peer socket is held by the launched process or a descendant.
    Verified,
    /// It is not: the text says what was found instead.
    Foreign(String),
    /// This platform offers no way to check (not Linux).
    Unsupported,
}

/// Whether this platform can check peers (said once at start when not).
pub(crate) fn supported() -> bool {
    cfg!(target_os = "linux")
}

/// Checks that the TCP connection from `peer` to `server` is held open by
/// `pid` or one of its descendants. Blocking: reads `/proc`.
pub(crate) fn check(peer: SocketAddr, server: SocketAddr, pid: u32) -> PeerCheck {
    if !supported() {
        return PeerCheck::Unsupported;
    }
    let Some((inode, socket_uid)) = socket_inode(peer, server) else {
        return PeerCheck::Foreign(format!(
            "no TCP socket from {peer} to {server} found in /proc/net/tcp"
        ));
    };
    // The kernel records who created the socket: another user's socket is
    // never the worker's, whatever process tree it finds its way into.
    let Some(worker_uid) = owner(pid) else {
        return PeerCheck::Foreign(format!("worker process {pid} is gone"));
    };
    if socket_uid != worker_uid {
        return PeerCheck::Foreign(format!(
            "the connection from {peer} belongs to uid {socket_uid}, the worker runs as uid {worker_uid}"
        ));
    }
    let family = process_family(pid, worker_uid);
    if family.iter().any(|p| holds_socket(*p, inode)) {
        PeerCheck::Verified
    } else {
        PeerCheck::Foreign(format!(
            "the connection from {peer} (socket inode {inode}) is not held by worker process {pid} \
             or its {} descendant(s)",
            family.len().saturating_sub(1)
        ))
    }
}

/// The uid owning process `pid` (its `/proc` entry).
fn owner(pid: u32) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/{pid}"))
        .ok()
        .map(|m| m.uid())
}

/// The inode and owner uid of the socket whose local end is `peer` and
/// remote end is `server` (the worker's side of the connection).
fn socket_inode(peer: SocketAddr, server: SocketAddr) -> Option<(u64, u32)> {
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .find_map(|table| {
            let text = std::fs::read_to_string(table).ok()?;
            find_inode(&text, peer, server)
        })
}

/// Searches one `/proc/net/tcp`-format table.
fn find_inode(table: &str, peer: SocketAddr, server: SocketAddr) -> Option<(u64, u32)> {
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...
        let local = parse_endpoint(fields.get(1)?)?;
        let remote = parse_endpoint(fields.get(2)?)?;
        let uid: u32 = fields.get(7)?.parse().ok()?;
        let inode: u64 = fields.get(9)?.parse().ok()?;
        // `server` is the accepted socket's own address, so the whole
        // 4-tuple is matched.
        let matches = same_endpoint(local, peer) && same_endpoint(remote, server);
        (matches && inode != 0).then_some((inode, uid))
    })
}

/// `0100007F:1F90` (IPv4) or 32 hex digits and a port (IPv6). Each 32-bit
/// word is printed as the kernel holds it in memory, so the bytes come out
/// in native order; the port is printed in host order.
fn parse_endpoint(text: &str) -> Option<SocketAddr> {
    let (addr, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |i: usize| -> Option<[u8; 4]> {
        let hex = addr.get(i * 8..i * 8 + 8)?;
        Some(u32::from_str_radix(hex, 16).ok()?.to_ne_bytes())
    };
    let ip = match addr.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(0)?)),
        32 => {
            let mut bytes = [0u8; 16];
            for i in 0..4 {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

fn same_endpoint(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && same_ip(a.ip(), b.ip())
}

/// Equal, counting an IPv4-mapped IPv6 address as its IPv4 address.
fn same_ip(a: IpAddr, b: IpAddr) -> bool {
    a.to_canonical() == b.to_canonical()
}

/// `pid`, every process whose parent chain leads to it, and every process
/// of `uid` in its process group (the host starts each worker as a group
/// leader; a reparented helper stays in the group). Another user's process
/// in the same session can join the group, so group members count only
/// when they run as the worker's user.
fn process_family(pid: u32, uid: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32, u32)> = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(p) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some((ppid, pgrp)) = std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|s| parse_stat(&s))
            {
                // A group member of another user is not family.
                let pgrp = if pgrp == pid && owner(p) != Some(uid) {
                    0
                } else {
                    pgrp
                };
                parents.push((p, ppid, pgrp));
            }
        }
    }
    family_of(pid, &parents)
}

/// The parent and process group from `/proc/<pid>/stat`. The command name
/// in parentheses may hold spaces and parentheses, so fields are counted
/// from the last `)`.
fn parse_stat(stat: &str) -> Option<(u32, u32)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let _state = fields.next()?;
    let ppid = fields.next()?.parse().ok()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some((ppid, pgrp))
}

/// `root` and its descendants among `(pid, ppid, pgrp)` rows.
fn family_of(root: u32, rows: &[(u32, u32, u32)]) -> Vec<u32> {
    let mut family = vec![root];
    let mut i = 0;
    while i < family.len() {
        let parent = family[i];
        for &(p, ppid, _) in rows {
            if ppid == parent && !family.contains(&p) {
                family.push(p);
            }
        }
        i += 1;
    }
    for &(p, _, pgrp) in rows {
        if pgrp == root && !family.contains(&p) {
            family.push(p);
        }
    }
    family
}

fn holds_socket(pid: u32, inode: u64) -> bool {
    let wanted = format!("socket:[{inode}]");
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path()).is_ok_and(|target| target.as_os_str() == wanted.as_str())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ipv4_and_ipv6_table_rows() {
        let v4 = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
                  0: 0100007F:9C40 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 424242 1 0000000000000000 20 4 30 10 -1\n";
        let peer: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let server: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        if cfg!(target_endian = "little") {
            assert_eq!(find_inode(v4, peer, server), Some((424242, 0)));
            let other: SocketAddr = "127.0.0.1:40001".parse().unwrap();
            assert_eq!(find_inode(v4, other, server), None);
            let v6 = "header\n   0: 0000000000000000FFFF00000100007F:9C40 0000000000000000FFFF00000100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 777 1\n";
            assert_eq!(find_inode(v6, peer, server), Some((777, 0)));
            // Another server port or address is another connection.
            let elsewhere: SocketAddr = "127.0.0.2:8080".parse().unwrap();
            assert_eq!(find_inode(v4, peer, elsewhere), None);
        }
    }

    #[test]
    fn a_listening_or_closed_socket_with_inode_zero_is_not_a_match() {
        let row = "h\n 0: 0100007F:9C40 0100007F:1F90 06 00000000:00000000 00:00000000 00000000 0 0 0 1\n";
        let peer: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        assert_eq!(
            find_inode(row, peer, "127.0.0.1:8080".parse().unwrap()),
            None
        );
    }

    #[test]
    fn stat_fields_count_from_the_last_parenthesis() {
        assert_eq!(parse_stat("42 (a) b) c) S 7 9 9 0"), Some((7, 9)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn the_family_is_the_descendants_and_the_process_group() {
        let rows = [
            (10, 1, 10),
            (11, 10, 10),
            (12, 11, 10),
            (13, 1, 10), // reparented, still in the group
            (20, 1, 20),
            (21, 20, 20),
        ];
        let mut f = family_of(10, &rows);
        f.sort();
        assert_eq!(f, [10, 11, 12, 13]);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_socket_of_this_process_is_verified_and_a_foreign_pid_is_not() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let server = listener.local_addr().unwrap();
        let client = std::net::TcpStream::connect(server).unwrap();
        let peer = client.local_addr().unwrap();
        let _accepted = listener.accept().unwrap();
        assert_eq!(check(peer, server, std::process::id()), PeerCheck::Verified);
        // A child of ours that holds none of our sockets is not the peer.
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .stdin(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let foreign = check(peer, server, child.id());
        let _ = child.kill();
        let _ = child.wait();
        assert!(matches!(foreign, PeerCheck::Foreign(_)), "{foreign:?}");
    }
}
