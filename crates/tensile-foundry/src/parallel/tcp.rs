//! Ranks that meet over TCP at `MASTER_ADDR:MASTER_PORT` (PyTorch's `env://` rendezvous): the
//! engine of a CPU run started by `torchrun --no-python` or by `srun` with those variables,
//! and the control channel of the NCCL engine (which hands NCCL's unique id through it).
//!
//! Rank 0 listens; every other rank connects and says who it is. An exchange goes through
//! rank 0: each rank sends its part, rank 0 sends everyone the concatenation. That moves
//! (W−1)·W parts through one machine, fine for the handful of CPU ranks this engine is for
//! (bench/RESULTS.md has the model; MPI or NCCL are the engines for more).
//!
//! A rank that dies closes its connection, so the others learn it at once; one that hangs is
//! given up on after the timeout. Either way the others stop with an error naming the rank.

use super::Collective;
use crate::error::{Error, Result};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// What a rank says first, so that a stray connection (another job on the same port, a port
/// scanner) is refused rather than taken for a rank.
const HELLO: &[u8; 8] = b"tensile1";

/// This process's place among ranks joined over TCP.
pub struct TcpGroup {
    rank: usize,
    world: usize,
    timeout: Duration,
    /// On rank 0: the other ranks' connections, in rank order. Elsewhere: the one to rank 0.
    links: Vec<TcpStream>,
}

impl TcpGroup {
    /// Joins the group: rank 0 listens on every interface at `port`, the others connect to
    /// `host:port`. Each side waits at most `timeout` for the group to be complete, and later
    /// for an answer in an exchange.
    ///
    /// # Errors
    /// The port is taken, the group is not complete in time, or a rank introduced itself wrongly.
    pub fn join(rank: usize, world: usize, host: &str, port: u16, timeout: Duration) -> Result<Self> {
        if rank == 0 {
            let listener = TcpListener::bind(("0.0.0.0", port)).map_err(|e| fail(0, format!("cannot listen on port {port} (MASTER_PORT): {e}")))?;
            Self::root(listener, world, timeout)
        } else {
            Self::peer(rank, world, (host, port), timeout)
        }
    }

    /// Rank 0 of `world` ranks, accepting the others on `listener`.
    ///
    /// # Errors
    /// As [`TcpGroup::join`].
    pub fn root(listener: TcpListener, world: usize, timeout: Duration) -> Result<Self> {
        let deadline = Instant::now() + timeout;
        listener.set_nonblocking(true).map_err(|e| fail(0, e.to_string()))?;
        let mut peers: Vec<Option<TcpStream>> = (0..world).map(|_| None).collect();
        let mut joined = 1;
        while joined < world {
            let stream = match listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    if Instant::now() > deadline {
                        let missing: Vec<String> = (1..world).filter(|r| peers[*r].is_none()).map(|r| r.to_string()).collect();
                        return Err(fail(0, format!("ranks {} did not join within {timeout:?}", missing.join(", "))));
                    }
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
                Err(e) => return Err(fail(0, format!("accepting a rank failed: {e}"))),
            };
            // A stranger that connects and says nothing holds the door for seconds, not for
            // the whole timeout.
            configure(&stream, timeout.min(Duration::from_secs(5))).map_err(|e| fail(0, e.to_string()))?;
            let mut hello = [0u8; 16];
            if (&stream).read_exact(&mut hello).is_err() || &hello[..8] != HELLO {
                // Not one of ours (or one that gave up): ignore it and keep listening.
                continue;
            }
            let (rank, size) = (u32_at(&hello, 8) as usize, u32_at(&hello, 12) as usize);
            if size != world {
                return Err(fail(0, format!("rank {rank} was started as one of {size} ranks, rank 0 as one of {world}")));
            }
            match peers.get_mut(rank) {
                Some(slot @ None) if rank > 0 => {
                    configure(&stream, timeout).map_err(|e| fail(0, e.to_string()))?;
                    *slot = Some(stream);
                }
                _ => return Err(fail(0, format!("two processes joined as rank {rank} (or it is out of range); check RANK"))),
            }
            joined += 1;
        }
        let links: Vec<TcpStream> = peers.into_iter().flatten().collect();
        for (r, link) in links.iter().enumerate() {
            // The go-ahead: every rank knows the group is complete before its first exchange.
            (&*link).write_all(&[1]).map_err(|e| lost(0, r + 1, &e, timeout))?;
        }
        Ok(TcpGroup { rank: 0, world, timeout, links })
    }

    /// Rank `rank` of `world`, connecting to rank 0 at `addr` (retrying while rank 0 starts).
    ///
    /// # Errors
    /// As [`TcpGroup::join`].
    pub fn peer(rank: usize, world: usize, addr: impl ToSocketAddrs + Copy, timeout: Duration) -> Result<Self> {
        let deadline = Instant::now() + timeout;
        let stream = loop {
            let tried = addr
                .to_socket_addrs()
                .map_err(|e| fail(rank, format!("MASTER_ADDR does not resolve: {e}")))?
                .find_map(|a| TcpStream::connect_timeout(&a, timeout).ok());
            match tried {
                Some(s) => break s,
                None if Instant::now() > deadline => return Err(fail(rank, format!("rank 0 did not answer at MASTER_ADDR:MASTER_PORT within {timeout:?}"))),
                None => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        configure(&stream, timeout).map_err(|e| fail(rank, e.to_string()))?;
        let mut hello = HELLO.to_vec();
        hello.extend((rank as u32).to_le_bytes());
        hello.extend((world as u32).to_le_bytes());
        (&stream).write_all(&hello).map_err(|e| lost(rank, 0, &e, timeout))?;
        let mut go = [0u8; 1];
        (&stream).read_exact(&mut go).map_err(|e| lost(rank, 0, &e, timeout))?;
        Ok(TcpGroup { rank, world, timeout, links: vec![stream] })
    }

    /// Every rank's `local` bytes (all of one length), concatenated in rank order.
    ///
    /// # Errors
    /// A rank closed its connection, did not answer within the timeout, or sent a part of
    /// another length.
    pub fn all_gather_bytes(&self, local: &[u8]) -> Result<Vec<u8>> {
        let n = local.len();
        if self.rank != 0 {
            let link = &self.links[0];
            let lost = |e: std::io::Error| lost(self.rank, 0, &e, self.timeout);
            let mut frame = (n as u64).to_le_bytes().to_vec();
            frame.extend_from_slice(local);
            (&*link).write_all(&frame).map_err(lost)?;
            let mut all = vec![0u8; n * self.world];
            (&*link).read_exact(&mut all).map_err(lost)?;
            return Ok(all);
        }
        let mut all = Vec::with_capacity(n * self.world);
        all.extend_from_slice(local);
        for (r, link) in self.links.iter().enumerate() {
            let lost = |e: std::io::Error| lost(0, r + 1, &e, self.timeout);
            let mut len = [0u8; 8];
            (&*link).read_exact(&mut len).map_err(lost)?;
            if u64::from_le_bytes(len) != n as u64 {
                return Err(fail(0, format!("rank {} sent {} bytes where rank 0 has {n}; the ranks are out of step", r + 1, u64::from_le_bytes(len))));
            }
            let start = all.len();
            all.resize(start + n, 0);
            (&*link).read_exact(&mut all[start..]).map_err(lost)?;
        }
        for (r, link) in self.links.iter().enumerate() {
            (&*link).write_all(&all).map_err(|e| lost(0, r + 1, &e, self.timeout))?;
        }
        Ok(all)
    }
}

impl Collective for TcpGroup {
    fn rank(&self) -> usize {
        self.rank
    }
    fn world_size(&self) -> usize {
        self.world
    }
    fn all_gather_f32(&self, local: &[f32]) -> Result<Vec<f32>> {
        let bytes: Vec<u8> = local.iter().flat_map(|x| x.to_le_bytes()).collect();
        Ok(self.all_gather_bytes(&bytes)?.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    }
    fn all_gather_f64(&self, local: &[f64]) -> Result<Vec<f64>> {
        let bytes: Vec<u8> = local.iter().flat_map(|x| x.to_le_bytes()).collect();
        Ok(self.all_gather_bytes(&bytes)?.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8]))).collect())
    }
    fn engine(&self) -> &'static str {
        "tcp"
    }
    /// Closes every connection: the other ranks' next (or current) wait ends at once with an
    /// error, and each stops with its own.
    fn abort(&self, _code: i32) {
        for link in &self.links {
            let _ = link.shutdown(Shutdown::Both);
        }
    }
}

fn configure(stream: &TcpStream, timeout: Duration) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

fn fail(rank: usize, reason: String) -> Error {
    Error::Collective { rank, reason }
}

/// The error for a failed read or write on the link to `peer`: a closed connection means the
/// peer stopped, a timeout that it hangs.
fn lost(rank: usize, peer: usize, e: &std::io::Error, timeout: Duration) -> Error {
    let reason = match e.kind() {
        ErrorKind::WouldBlock | ErrorKind::TimedOut => format!("no answer from rank {peer} for {timeout:?} (it is stuck or its machine is gone)"),
        ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe => {
            format!("rank {peer} stopped (its connection closed); see its error")
        }
        _ => format!("rank {peer} stopped (its connection failed: {e}); see its error"),
    };
    fail(rank, reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;

    /// `world` ranks as threads on localhost, each running `f` on its group.
    fn ranks<T: Send + 'static>(world: usize, timeout: Duration, f: impl Fn(TcpGroup) -> T + Send + Sync + Copy + 'static) -> Vec<Result<T>> {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut handles = vec![thread::spawn(move || TcpGroup::root(listener, world, timeout).map(f))];
        for r in 1..world {
            handles.push(thread::spawn(move || TcpGroup::peer(r, world, addr, timeout).map(f)));
        }
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    }

    #[test]
    fn every_rank_gets_every_part_in_rank_order() {
        for world in [2, 3, 5] {
            let out = ranks(world, Duration::from_secs(20), |g| {
                let r = g.rank() as f32;
                let a = g.all_gather_f32(&[r, r + 0.5]).unwrap();
                let b = g.all_gather_f64(&[f64::from(r) * 1e300]).unwrap();
                (g.rank(), g.world_size(), a, b, g.max_u64(g.rank() as u64 * 3).unwrap(), g.engine())
            });
            for (r, o) in out.into_iter().enumerate() {
                let (rank, size, a, b, max, engine) = o.unwrap();
                let want_a: Vec<f32> = (0..world).flat_map(|k| [k as f32, k as f32 + 0.5]).collect();
                let want_b: Vec<f64> = (0..world).map(|k| k as f64 * 1e300).collect();
                assert_eq!((rank, size, a, b, max, engine), (r, world, want_a, want_b, (world as u64 - 1) * 3, "tcp"));
            }
        }
    }

    #[test]
    fn a_rank_that_stops_ends_the_others_waits_at_once() {
        let started = Instant::now();
        let out = ranks(3, Duration::from_secs(60), |g| {
            g.all_gather_f32(&[1.0]).unwrap();
            if g.rank() == 2 {
                // Its process lives on (the group is handed back, not dropped): the abort alone
                // must tell the others.
                g.abort(1);
                return (Err(fail(2, "stopped".into())), Some(g));
            }
            (g.all_gather_f32(&[2.0]).map(|_| ()), None)
        });
        // Rank 2 stopped; rank 0 learns it from the closed connection, and rank 1 from rank 0's.
        let messages: Vec<String> = out.into_iter().map(|o| o.unwrap().0.unwrap_err().to_string()).collect();
        assert!(messages[0].contains("rank 0: rank 2 stopped"), "{}", messages[0]);
        assert!(messages[1].contains("rank 1: rank 0 stopped"), "{}", messages[1]);
        assert!(started.elapsed() < Duration::from_secs(30), "waited for the timeout: {:?}", started.elapsed());
    }

    #[test]
    fn ranks_out_of_step_are_an_error_not_a_garbled_gather() {
        let out = ranks(2, Duration::from_secs(20), |g| g.all_gather_bytes(&vec![7; g.rank() + 1]));
        let message = out[0].as_ref().unwrap().as_ref().unwrap_err().to_string();
        assert!(message.contains("rank 1 sent 2 bytes where rank 0 has 1"), "{message}");
        assert!(out[1].as_ref().unwrap().is_err(), "rank 1 learns it from rank 0's closed connection");
    }

    #[test]
    fn a_silent_rank_is_given_up_after_the_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let timeout = Duration::from_millis(300);
        let root = thread::spawn(move || TcpGroup::root(listener, 2, timeout).unwrap().all_gather_f32(&[1.0]));
        // Rank 1 joins and then says nothing, its connection open, until rank 0 has given up.
        let silent = TcpGroup::peer(1, 2, addr, timeout).unwrap();
        let message = root.join().unwrap().unwrap_err().to_string();
        assert!(message.contains("rank 0: no answer from rank 1 for 300ms"), "{message}");
        drop(silent);
    }

    #[test]
    fn stray_connections_and_mistaken_ranks_are_told_apart() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let root = thread::spawn(move || TcpGroup::root(listener, 2, Duration::from_secs(20)));
        // A stranger that says something else is ignored; the real rank 1 still joins.
        TcpStream::connect(addr).unwrap().write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
        let peer = TcpGroup::peer(1, 2, addr, Duration::from_secs(20)).unwrap();
        let root = root.join().unwrap().unwrap();
        let (a, b) = thread::scope(|s| {
            let a = s.spawn(|| root.all_gather_bytes(b"ab").unwrap());
            let b = peer.all_gather_bytes(b"cd").unwrap();
            (a.join().unwrap(), b)
        });
        assert_eq!((a, b), (b"abcd".to_vec(), b"abcd".to_vec()));

        // A rank started with another world size, or a rank number twice, stops rank 0 with
        // an error naming it.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let root = thread::spawn(move || TcpGroup::root(listener, 3, Duration::from_secs(20)));
        let _one = thread::spawn(move || TcpGroup::peer(1, 4, addr, Duration::from_secs(2)));
        let message = root.join().unwrap().err().unwrap().to_string();
        assert!(message.contains("rank 1 was started as one of 4 ranks, rank 0 as one of 3"), "{message}");
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let root = thread::spawn(move || TcpGroup::root(listener, 3, Duration::from_secs(20)));
        let _a = thread::spawn(move || TcpGroup::peer(1, 3, addr, Duration::from_secs(2)));
        let _b = thread::spawn(move || TcpGroup::peer(1, 3, addr, Duration::from_secs(2)));
        let message = root.join().unwrap().err().unwrap().to_string();
        assert!(message.contains("two processes joined as rank 1"), "{message}");
    }

    #[test]
    fn an_incomplete_group_is_an_error_naming_the_missing_ranks() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let root = thread::spawn(move || TcpGroup::root(listener, 3, Duration::from_millis(500)));
        let _one = thread::spawn(move || TcpGroup::peer(1, 3, addr, Duration::from_millis(500)));
        let message = root.join().unwrap().err().unwrap().to_string();
        assert!(message.contains("ranks 2 did not join"), "{message}");
        // Nobody listening: a rank other than 0 gives up too.
        let free = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let message = TcpGroup::peer(1, 2, free, Duration::from_millis(300)).err().unwrap().to_string();
        assert!(message.contains("rank 0 did not answer"), "{message}");
    }
}
