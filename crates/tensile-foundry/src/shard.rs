//! Token shards on disk: a 32-byte header (magic, version, width, token count, checksum)
//! and the tokens little-endian as u16 or u32, written atomically and read by mmap.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The first bytes of every shard.
pub const MAGIC: [u8; 8] = *b"TNSLSHRD";
/// The format version this crate writes and reads.
pub const VERSION: u32 = 1;
/// Header bytes before the tokens.
pub const HEADER: usize = 32;

/// FNV-1a over `bytes`: cheap, dependency-free, and enough to notice a damaged file.
pub fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// Bytes per token for a vocabulary of `vocab` ids: 2 when every id fits in u16.
pub fn width_for(vocab: usize) -> u8 {
    if vocab <= 1 << 16 {
        2
    } else {
        4
    }
}

/// What the manifest records of one shard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardInfo {
    /// File name, relative to the data folder.
    pub file: String,
    /// Tokens in it.
    pub tokens: u64,
    /// [`checksum`] of its token bytes.
    pub checksum: u64,
}

/// Writes chunks into numbered shards of at most `tokens_per_shard` tokens (whole chunks),
/// each written atomically when full: memory holds one shard at most.
pub struct ShardWriter {
    dir: PathBuf,
    prefix: String,
    width: u8,
    capacity: usize,
    buf: Vec<u8>,
    tokens: usize,
    shards: Vec<ShardInfo>,
}

impl ShardWriter {
    /// Shards `dir/{prefix}_{n:05}.bin` of `width`-byte tokens.
    pub fn new(dir: &Path, prefix: &str, width: u8, tokens_per_shard: usize) -> Self {
        Self { dir: dir.to_path_buf(), prefix: prefix.into(), width, capacity: tokens_per_shard.max(1), buf: Vec::new(), tokens: 0, shards: Vec::new() }
    }

    /// Appends one chunk, starting a new shard first when it would not fit.
    pub fn push(&mut self, chunk: &[u32]) -> Result<()> {
        if self.tokens > 0 && self.tokens + chunk.len() > self.capacity {
            self.flush()?;
        }
        for &t in chunk {
            match self.width {
                2 => self.buf.extend_from_slice(&(t as u16).to_le_bytes()),
                _ => self.buf.extend_from_slice(&t.to_le_bytes()),
            }
        }
        self.tokens += chunk.len();
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.tokens == 0 {
            return Ok(());
        }
        let file = format!("{}_{:05}.bin", self.prefix, self.shards.len());
        let sum = checksum(&self.buf);
        let mut bytes = Vec::with_capacity(HEADER + self.buf.len());
        bytes.extend_from_slice(&MAGIC);
        bytes.extend_from_slice(&VERSION.to_le_bytes());
        bytes.extend_from_slice(&[self.width, 0, 0, 0]);
        bytes.extend_from_slice(&(self.tokens as u64).to_le_bytes());
        bytes.extend_from_slice(&sum.to_le_bytes());
        bytes.extend_from_slice(&self.buf);
        let path = self.dir.join(&file);
        tensile_nn::files::write_atomic(&path, bytes).map_err(|source| Error::Nn(tensile_nn::Error::Io { path, source }))?;
        self.shards.push(ShardInfo { file, tokens: self.tokens as u64, checksum: sum });
        self.buf.clear();
        self.tokens = 0;
        Ok(())
    }

    /// Writes the last shard and returns every shard written.
    pub fn finish(mut self) -> Result<Vec<ShardInfo>> {
        self.flush()?;
        Ok(self.shards)
    }
}

/// A shard mapped into memory.
pub struct Shard {
    map: memmap2::Mmap,
    width: u8,
    tokens: usize,
}

impl Shard {
    /// Maps `path` and checks its header and length (`verify` checks the checksum too).
    pub fn open(path: &Path) -> Result<Self> {
        let bad = |reason: String| Error::Data { path: path.to_path_buf(), reason };
        tensile_nn::files::regular_file(path, tensile_nn::files::MAX_WEIGHTS_BYTES)?;
        let file = std::fs::File::open(path).map_err(|source| Error::Nn(tensile_nn::Error::Io { path: path.to_path_buf(), source }))?;
        // SAFETY: the shard is written once, atomically, and never modified in place; a file
        // replaced under the map keeps the mapped inode alive.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| bad(format!("cannot map: {e}")))?;
        if map.len() < HEADER || map[..8] != MAGIC {
            return Err(bad("not a tensile token shard (bad magic)".into()));
        }
        let version = u32::from_le_bytes(map[8..12].try_into().expect("4 bytes"));
        if version != VERSION {
            return Err(bad(format!("shard version {version}, this build reads {VERSION}")));
        }
        let width = map[12];
        if width != 2 && width != 4 {
            return Err(bad(format!("token width {width} is neither 2 nor 4")));
        }
        let tokens = u64::from_le_bytes(map[16..24].try_into().expect("8 bytes")) as usize;
        if map.len() != HEADER + tokens * usize::from(width) {
            return Err(bad(format!("{} bytes, the header promises {} tokens of {width} bytes (truncated?)", map.len(), tokens)));
        }
        Ok(Self { map, width, tokens })
    }

    /// Whether the token bytes still have the checksum the header records.
    pub fn verify(&self) -> bool {
        checksum(&self.map[HEADER..]) == u64::from_le_bytes(self.map[24..32].try_into().expect("8 bytes"))
    }

    /// Tokens in the shard.
    pub fn len(&self) -> usize {
        self.tokens
    }

    /// Whether it holds no token.
    pub fn is_empty(&self) -> bool {
        self.tokens == 0
    }

    /// Tokens `start..start + n`.
    pub fn tokens(&self, start: usize, n: usize) -> Vec<u32> {
        let w = usize::from(self.width);
        self.map[HEADER + start * w..HEADER + (start + n) * w]
            .chunks(w)
            .map(|b| if w == 2 { u32::from(u16::from_le_bytes([b[0], b[1]])) } else { u32::from_le_bytes([b[0], b[1], b[2], b[3]]) })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_round_trip_through_shards_of_either_width() {
        let dir = tempfile::tempdir().unwrap();
        for width in [2u8, 4] {
            let mut w = ShardWriter::new(dir.path(), &format!("w{width}"), width, 10);
            let chunks: Vec<Vec<u32>> = (0..7).map(|c| (0..4).map(|i| c * 1000 + i + if width == 4 { 70_000 } else { 0 }).collect()).collect();
            for c in &chunks {
                w.push(c).unwrap();
            }
            let shards = w.finish().unwrap();
            // 10 tokens a shard holds two 4-token chunks: 7 chunks make 4 shards.
            assert_eq!(shards.iter().map(|s| s.tokens).collect::<Vec<_>>(), [8, 8, 8, 4]);
            let mut back = Vec::new();
            for s in &shards {
                let shard = Shard::open(&dir.path().join(&s.file)).unwrap();
                assert!(shard.verify() && !shard.is_empty());
                back.extend(shard.tokens(0, shard.len()));
            }
            assert_eq!(back, chunks.concat());
        }
        assert_eq!((width_for(65_536), width_for(65_537)), (2, 4));
    }

    #[test]
    fn damaged_shards_are_refused_or_fail_verification() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = ShardWriter::new(dir.path(), "s", 2, 100);
        w.push(&[1, 2, 3, 4]).unwrap();
        let file = dir.path().join(&w.finish().unwrap()[0].file);
        let good = std::fs::read(&file).unwrap();
        let check = |bytes: &[u8], want: &str| {
            std::fs::write(&file, bytes).unwrap();
            let e = Shard::open(&file).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(e.contains(want), "{want}: {e}");
        };
        check(&good[..good.len() - 1], "truncated");
        check(&[b"XXXXXXXX", &good[8..]].concat(), "bad magic");
        let mut v = good.clone();
        v[8] = 9;
        check(&v, "shard version 9");
        let mut v = good.clone();
        v[12] = 3;
        check(&v, "width 3");
        let mut v = good.clone();
        *v.last_mut().unwrap() ^= 1;
        std::fs::write(&file, &v).unwrap();
        assert!(!Shard::open(&file).unwrap().verify(), "a flipped bit fails the checksum");
    }
}
