//! TensorBoard event files for scalar metrics, written and read without TensorBoard.
//!
//! An event file (`events.out.tfevents.{unix_seconds}.{hostname}`) is a sequence of
//! TFRecords: a u64 little-endian length, the masked CRC32C of those 8 bytes, the data,
//! and the masked CRC32C of the data. Each record's data is a protobuf `Event`; the first
//! one carries only `file_version = "brain.Event:2"`, and each later one a `Summary`
//! whose `Value`s hold a tag and a `simple_value` (an f32), which is all TensorBoard needs
//! to draw a scalar chart.
//!
//! Everything here is hand-written, the CRC and the protobuf encoding included: the part
//! of the format scalars use is a few dozen bytes of well-documented, long-stable layout,
//! while the maintained crates for it pull in a protobuf toolchain (build scripts, `protoc`
//! or generated code) that a metrics logger does not justify. [`read_scalars`] decodes the
//! same subset back, checking every checksum, so tests and people without TensorBoard
//! installed can check a run's logs.

use crate::error::{Error, Result};
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// The `file_version` TensorBoard expects in an event file's first record.
const FILE_VERSION: &str = "brain.Event:2";

/// CRC32C (Castagnoli) polynomial, bit-reversed, as TFRecord uses.
const CRC32C_POLY: u32 = 0x82F6_3B78;

/// Byte-at-a-time lookup table, built at compile time so the CRC needs no lazy init.
const CRC32C_TABLE: [u32; 256] = crc32c_table();

const fn crc32c_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ CRC32C_POLY } else { crc >> 1 };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

/// CRC32C of `data` (initial value and final xor all ones, reflected).
pub fn crc32c(data: &[u8]) -> u32 {
    !data.iter().fold(!0u32, |crc, &b| CRC32C_TABLE[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8))
}

/// The CRC as TFRecord stores it: rotated and offset, because a CRC computed over data
/// that itself contains CRCs is weak, and the mask breaks that relation.
pub fn masked_crc32c(data: &[u8]) -> u32 {
    let crc = crc32c(data);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// Appends scalar metrics to one TensorBoard event file.
///
/// Records go through a [`BufWriter`]; call [`EventWriter::flush`] to make them visible
/// to a reader (TensorBoard polls the file). Dropping the writer flushes too, but silently
/// drops an I/O error, so a trainer should flush explicitly at the end of a run.
pub struct EventWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

impl EventWriter {
    /// Creates `dir` if needed and a new event file in it, and writes the file-version
    /// record at once so that even a run that logs nothing leaves a valid file.
    ///
    /// The name is `events.out.tfevents.{unix_seconds}.{hostname}`; if a file of that name
    /// already exists (two writers in the same second), `.1`, `.2`, … is appended rather
    /// than truncating it; TensorBoard reads any file whose name contains `tfevents`.
    pub fn create(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|source| io_error(dir, source))?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let base = format!("events.out.tfevents.{}.{}", now.as_secs(), hostname());
        let mut attempt = 0u32;
        let (path, file) = loop {
            let name = if attempt == 0 { base.clone() } else { format!("{base}.{attempt}") };
            let path = dir.join(name);
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => break (path, file),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 1000 => attempt += 1,
                Err(source) => return Err(io_error(&path, source)),
            }
        };
        let mut writer = Self { path, out: BufWriter::new(file) };
        let mut event = Vec::new();
        put_fixed64_field(&mut event, 1, now.as_secs_f64().to_bits());
        put_bytes_field(&mut event, 3, FILE_VERSION.as_bytes());
        writer.write_record(&event)?;
        writer.flush()?;
        Ok(writer)
    }

    /// The event file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes one event at `step` and `wall_time` (seconds since the Unix epoch) holding
    /// one value per `(tag, value)`. Values are stored as f32, the only scalar type the
    /// `simple_value` field has; one outside the f32 range becomes an infinity. An empty
    /// `scalars` writes nothing, since an event without values shows nowhere.
    ///
    /// Fails if `step` exceeds `i64::MAX`, because the field is a protobuf int64 and
    /// TensorBoard would read such a step back as negative.
    pub fn add_scalars(&mut self, step: u64, wall_time: f64, scalars: &[(&str, f64)]) -> Result<()> {
        if scalars.is_empty() {
            return Ok(());
        }
        if i64::try_from(step).is_err() {
            return Err(Error::Invalid { field: "step", reason: format!("{step} does not fit the event format's int64") });
        }
        let mut summary = Vec::new();
        for &(tag, value) in scalars {
            let mut v = Vec::with_capacity(tag.len() + 8);
            put_bytes_field(&mut v, 1, tag.as_bytes());
            put_fixed32_field(&mut v, 2, (value as f32).to_bits());
            put_bytes_field(&mut summary, 1, &v);
        }
        let mut event = Vec::with_capacity(summary.len() + 24);
        put_fixed64_field(&mut event, 1, wall_time.to_bits());
        if step != 0 {
            // proto3 leaves default values out; a reader takes a missing step as 0.
            put_varint_field(&mut event, 2, step);
        }
        put_bytes_field(&mut event, 5, &summary);
        self.write_record(&event)
    }

    /// Pushes buffered records to the file.
    pub fn flush(&mut self) -> Result<()> {
        self.out.flush().map_err(|source| io_error(&self.path, source))
    }

    /// Frames `data` as a TFRecord. The frame is built whole first so that one record is
    /// one write into the buffer.
    fn write_record(&mut self, data: &[u8]) -> Result<()> {
        let len = (data.len() as u64).to_le_bytes();
        let mut frame = Vec::with_capacity(data.len() + 16);
        frame.extend_from_slice(&len);
        frame.extend_from_slice(&masked_crc32c(&len).to_le_bytes());
        frame.extend_from_slice(data);
        frame.extend_from_slice(&masked_crc32c(data).to_le_bytes());
        self.out.write_all(&frame).map_err(|source| io_error(&self.path, source))
    }
}

/// Reads every scalar of an event file as `(step, tag, value)`, in file order.
///
/// Both checksums of every record are verified, and a mismatch or a truncated record is
/// an error naming its byte offset: this is meant for checking a run, so it is strict
/// where TensorBoard would quietly stop at a damaged tail. Values other than
/// `simple_value` (images, histograms, tensors) are skipped.
pub fn read_scalars(path: &Path) -> Result<Vec<(u64, String, f32)>> {
    let bytes = std::fs::read(path).map_err(|source| io_error(path, source))?;
    let bad = |reason: String| Error::Data { path: path.to_path_buf(), reason };
    let mut scalars = Vec::new();
    for record in records(&bytes) {
        let (offset, data) = record.map_err(&bad)?;
        decode_event(data, &mut scalars).map_err(|e| bad(format!("record at byte {offset}: {e}")))?;
    }
    Ok(scalars)
}

/// The records of an event file with the byte offset each starts at, checksums verified.
fn records(bytes: &[u8]) -> impl Iterator<Item = std::result::Result<(usize, &[u8]), String>> {
    let mut pos = 0usize;
    std::iter::from_fn(move || {
        if pos >= bytes.len() {
            return None;
        }
        let start = pos;
        let result = (|| {
            let header = bytes.get(start..start + 12).ok_or_else(|| format!("truncated record header at byte {start}"))?;
            let (len_bytes, len_crc) = header.split_at(8);
            if masked_crc32c(len_bytes).to_le_bytes() != len_crc {
                return Err(format!("length checksum mismatch in record at byte {start}"));
            }
            let len = u64::from_le_bytes(len_bytes.try_into().unwrap_or_default());
            let data_start = start + 12;
            let data_end = usize::try_from(len)
                .ok()
                .and_then(|len| data_start.checked_add(len))
                .filter(|&end| end.checked_add(4).is_some_and(|e| e <= bytes.len()))
                .ok_or_else(|| format!("truncated record at byte {start}: {len} data bytes announced"))?;
            let data = &bytes[data_start..data_end];
            if masked_crc32c(data).to_le_bytes() != bytes[data_end..data_end + 4] {
                return Err(format!("data checksum mismatch in record at byte {start}"));
            }
            Ok((data_end + 4, data))
        })();
        match result {
            Ok((next, data)) => {
                pos = next;
                Some(Ok((start, data)))
            }
            Err(e) => {
                // Nothing after a bad frame can be located, so iteration ends here.
                pos = bytes.len();
                Some(Err(e))
            }
        }
    })
}

/// Appends the `simple_value`s of one `Event` to `out`.
fn decode_event(data: &[u8], out: &mut Vec<(u64, String, f32)>) -> std::result::Result<(), String> {
    let mut step = 0i64;
    let mut values = Vec::new();
    let mut event = Reader::new(data);
    while let Some((field, value)) = event.field()? {
        match (field, value) {
            (2, Field::Varint(v)) => step = v as i64,
            (5, Field::Bytes(summary)) => {
                let mut summary = Reader::new(summary);
                while let Some((field, value)) = summary.field()? {
                    if let (1, Field::Bytes(v)) = (field, value) {
                        if let Some(tv) = decode_value(v)? {
                            values.push(tv);
                        }
                    }
                }
            }
            _ => {}
        }
    }
    let step = u64::try_from(step).map_err(|_| format!("negative step {step}"))?;
    out.extend(values.into_iter().map(|(tag, value)| (step, tag, value)));
    Ok(())
}

/// The tag and `simple_value` of one `Summary.Value`, or `None` when it holds another kind.
fn decode_value(data: &[u8]) -> std::result::Result<Option<(String, f32)>, String> {
    let (mut tag, mut simple) = (String::new(), None);
    let mut value = Reader::new(data);
    while let Some((field, v)) = value.field()? {
        match (field, v) {
            (1, Field::Bytes(b)) => tag = String::from_utf8(b.to_vec()).map_err(|_| "a tag is not UTF-8".to_string())?,
            (2, Field::Fixed32(bits)) => simple = Some(f32::from_bits(bits)),
            _ => {}
        }
    }
    Ok(simple.map(|v| (tag, v)))
}

/// One decoded protobuf field value, by wire type.
enum Field<'a> {
    Varint(u64),
    Fixed64(#[allow(dead_code)] u64),
    Bytes(&'a [u8]),
    Fixed32(u32),
}

/// A bounds-checked protobuf field reader: malformed input is an error, never a panic.
struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len()).ok_or("a field runs past its message")?;
        let bytes = &self.data[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn varint(&mut self) -> std::result::Result<u64, String> {
        let mut value = 0u64;
        for i in 0..10 {
            let b = self.take(1)?[0];
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("a varint is longer than 10 bytes".into())
    }

    /// The next field number and value, or `None` at the end of the message.
    fn field(&mut self) -> std::result::Result<Option<(u64, Field<'a>)>, String> {
        if self.pos >= self.data.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let value = match key & 7 {
            0 => Field::Varint(self.varint()?),
            1 => Field::Fixed64(u64::from_le_bytes(self.take(8)?.try_into().unwrap_or_default())),
            2 => {
                let len = self.varint()?;
                Field::Bytes(self.take(usize::try_from(len).map_err(|_| "a length does not fit in memory")?)?)
            }
            5 => Field::Fixed32(u32::from_le_bytes(self.take(4)?.try_into().unwrap_or_default())),
            wire => return Err(format!("unsupported protobuf wire type {wire}")),
        };
        Ok(Some((key >> 3, value)))
    }
}

fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn put_varint_field(buf: &mut Vec<u8>, field: u64, v: u64) {
    put_varint(buf, field << 3);
    put_varint(buf, v);
}

fn put_fixed64_field(buf: &mut Vec<u8>, field: u64, bits: u64) {
    put_varint(buf, (field << 3) | 1);
    buf.extend_from_slice(&bits.to_le_bytes());
}

fn put_bytes_field(buf: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    put_varint(buf, (field << 3) | 2);
    put_varint(buf, bytes.len() as u64);
    buf.extend_from_slice(bytes);
}

fn put_fixed32_field(buf: &mut Vec<u8>, field: u64, bits: u32) {
    put_varint(buf, (field << 3) | 5);
    buf.extend_from_slice(&bits.to_le_bytes());
}

fn io_error(path: &Path, source: std::io::Error) -> Error {
    Error::Nn(tensile_nn::Error::Io { path: path.to_path_buf(), source })
}

/// The host name for the file name: `HOSTNAME`, else `/etc/hostname`, else `localhost`,
/// keeping only characters safe in a file name (a `/` would change the directory).
fn hostname() -> String {
    let raw = std::env::var("HOSTNAME").ok().filter(|h| !h.trim().is_empty()).or_else(|| std::fs::read_to_string("/etc/hostname").ok()).unwrap_or_default();
    let clean: String = raw.trim().chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')).collect();
    if clean.is_empty() {
        "localhost".into()
    } else {
        clean
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b""), 0);
    }

    #[test]
    fn masked_crc_of_the_first_record_length_matches_tensorflow_files() {
        // Every TensorFlow-written event file starts `18 00 00 00 00 00 00 00 a3 7f 4b 22`:
        // a 24-byte file-version event and the masked CRC of its length.
        assert_eq!(masked_crc32c(&24u64.to_le_bytes()), 0x224b_7fa3);
    }

    #[test]
    fn scalars_round_trip_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = EventWriter::create(&dir.path().join("logs")).unwrap();
        let name = w.path().file_name().unwrap().to_str().unwrap().to_string();
        assert!(name.starts_with("events.out.tfevents."), "{name}");
        w.add_scalars(0, 1.0e9, &[("loss", 2.5), ("lr", 1e-3)]).unwrap();
        w.add_scalars(1, 1.0e9 + 1.0, &[("loss", 2.25)]).unwrap();
        w.add_scalars(300, 1.0e9 + 2.0, &[("loss", 0.125), ("lr", 5e-4), ("train/grad_norm", 1e40)]).unwrap();
        w.add_scalars(301, 1.0e9 + 3.0, &[]).unwrap();
        w.flush().unwrap();
        let got = read_scalars(w.path()).unwrap();
        let want = vec![
            (0, "loss".to_string(), 2.5f32),
            (0, "lr".to_string(), 1e-3f32),
            (1, "loss".to_string(), 2.25),
            (300, "loss".to_string(), 0.125),
            (300, "lr".to_string(), 5e-4f32),
            (300, "train/grad_norm".to_string(), f32::INFINITY),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn second_writer_in_the_same_second_does_not_clobber_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = EventWriter::create(dir.path()).unwrap();
        a.add_scalars(1, 0.0, &[("a", 1.0)]).unwrap();
        a.flush().unwrap();
        let b = EventWriter::create(dir.path()).unwrap();
        assert_ne!(a.path(), b.path());
        assert_eq!(read_scalars(a.path()).unwrap(), vec![(1, "a".to_string(), 1.0)]);
    }

    #[test]
    fn step_beyond_int64_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = EventWriter::create(dir.path()).unwrap();
        assert!(matches!(w.add_scalars(u64::MAX, 0.0, &[("x", 1.0)]), Err(Error::Invalid { field: "step", .. })));
    }

    #[test]
    fn first_record_is_the_file_version_event() {
        let dir = tempfile::tempdir().unwrap();
        let w = EventWriter::create(dir.path()).unwrap();
        let bytes = std::fs::read(w.path()).unwrap();
        let (offset, data) = records(&bytes).next().unwrap().unwrap();
        assert_eq!(offset, 0);
        // Same length as TensorFlow's own first record: wall_time (9 bytes) + file_version (15).
        assert_eq!(data.len(), 24);
        let mut r = Reader::new(data);
        let mut version = None;
        let mut wall_time = None;
        while let Some((field, value)) = r.field().unwrap() {
            match (field, value) {
                (1, Field::Fixed64(bits)) => wall_time = Some(f64::from_bits(bits)),
                (3, Field::Bytes(b)) => version = Some(std::str::from_utf8(b).unwrap().to_string()),
                (f, _) => panic!("unexpected field {f}"),
            }
        }
        assert_eq!(version.as_deref(), Some("brain.Event:2"));
        assert!(wall_time.unwrap() > 1.5e9);
        assert!(read_scalars(w.path()).unwrap().is_empty());
    }

    #[test]
    fn corrupted_byte_fails_naming_the_record_offset() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = EventWriter::create(dir.path()).unwrap();
        w.add_scalars(1, 0.0, &[("loss", 1.0)]).unwrap();
        w.add_scalars(2, 0.0, &[("loss", 0.5)]).unwrap();
        w.flush().unwrap();
        let mut bytes = std::fs::read(w.path()).unwrap();
        let starts: Vec<usize> = records(&bytes).map(|r| r.unwrap().0).collect();
        assert_eq!(starts.len(), 3);
        let second = starts[2];
        // A flipped data byte in the last record, then a flipped length byte in the second.
        bytes[second + 14] ^= 0x01;
        std::fs::write(w.path(), &bytes).unwrap();
        let err = read_scalars(w.path()).unwrap_err().to_string();
        assert!(err.contains(&format!("data checksum mismatch in record at byte {second}")), "{err}");
        bytes[starts[1]] ^= 0x01;
        std::fs::write(w.path(), &bytes).unwrap();
        let err = read_scalars(w.path()).unwrap_err().to_string();
        assert!(err.contains(&format!("length checksum mismatch in record at byte {}", starts[1])), "{err}");
    }

    #[test]
    fn truncated_file_fails_naming_the_record_offset() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = EventWriter::create(dir.path()).unwrap();
        w.add_scalars(7, 0.0, &[("loss", 1.0)]).unwrap();
        w.flush().unwrap();
        let bytes = std::fs::read(w.path()).unwrap();
        let start = records(&bytes).nth(1).unwrap().unwrap().0;
        std::fs::write(w.path(), &bytes[..bytes.len() - 2]).unwrap();
        let err = read_scalars(w.path()).unwrap_err().to_string();
        assert!(err.contains(&format!("truncated record at byte {start}")), "{err}");
    }
}
