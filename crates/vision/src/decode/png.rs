//! Whether a PNG file reaches its `IEND` chunk.
//!
//! The PNG decoder fails on image data that ends early and on a chunk whose
//! CRC is wrong, but decodes a file cut after its last `IDAT` chunk without
//! complaint. [`check_complete`] walks the chunk lengths to the `IEND`
//! chunk, so that a file cut anywhere is an error; what follows `IEND` is
//! ignored.

const SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1A, b'\n'];

/// Checks that the PNG in `data` is whole up to its `IEND` chunk; the
/// message says where it ends otherwise.
pub(super) fn check_complete(data: &[u8]) -> Result<(), String> {
    if !data.starts_with(&SIGNATURE) {
        return Err("not a PNG stream (no PNG signature)".into());
    }
    let mut pos = SIGNATURE.len();
    while let Some(header) = data.get(pos..pos + 8) {
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let kind = String::from_utf8_lossy(&header[4..8]).into_owned();
        let end = pos.checked_add(12).and_then(|p| p.checked_add(len)).filter(|&e| e <= data.len());
        let Some(end) = end else {
            return Err(format!("the data ends inside the {kind} chunk at byte {pos} (truncated file)"));
        };
        if kind == "IEND" {
            return Ok(());
        }
        pos = end;
    }
    Err(format!("the data ends after {pos} bytes, before the IEND chunk (truncated file)"))
}
