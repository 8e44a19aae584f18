//! How large an image the decoder accepts, checked against the file's header
//! before any pixel is allocated.

use image::ColorType;
use tessera_hf::{Error, Result};

/// The largest image [`decode_image_with`](super::decode_image_with) decodes.
///
/// The width, the height and the size of the decoded pixel buffer (before
/// the conversion to RGB, which takes `width * height * 3` bytes more) are
/// read from the header and compared with these limits before anything is
/// decoded, so a file claiming 65535x65535 pixels costs nothing.
///
/// The defaults ([`DecodeLimits::DEFAULT_MAX_SIDE`] pixels a side,
/// [`DecodeLimits::DEFAULT_MAX_BYTES`]) take any photo a camera or a phone
/// produces. [`DecodeLimits::from_env`] raises or lowers them from
/// `TESSERA_MAX_IMAGE_SIDE` (pixels, both width and height) and
/// `TESSERA_MAX_IMAGE_BYTES` (bytes, with an optional `K`, `M` or `G`
/// suffix for KiB, MiB, GiB); [`load_image`](super::load_image) and
/// [`decode_image`](super::decode_image) use it.
///
/// ```
/// use tessera_vision::DecodeLimits;
/// let small = DecodeLimits { max_width: 1024, max_height: 1024, ..DecodeLimits::default() };
/// assert_eq!(small.max_bytes, DecodeLimits::DEFAULT_MAX_BYTES);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeLimits {
    /// The widest image accepted, in pixels.
    pub max_width: u32,
    /// The tallest image accepted, in pixels.
    pub max_height: u32,
    /// The largest decoded pixel buffer accepted, in bytes.
    pub max_bytes: u64,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits { max_width: Self::DEFAULT_MAX_SIDE, max_height: Self::DEFAULT_MAX_SIDE, max_bytes: Self::DEFAULT_MAX_BYTES }
    }
}

impl DecodeLimits {
    /// The default largest width and height: 16384 pixels.
    pub const DEFAULT_MAX_SIDE: u32 = 16384;
    /// The default largest decoded buffer: 512 MiB (an 8-bit RGB image of
    /// about 13000x13000 pixels).
    pub const DEFAULT_MAX_BYTES: u64 = 512 << 20;
    /// The environment variable that sets the largest width and height.
    pub const SIDE_VAR: &'static str = "TESSERA_MAX_IMAGE_SIDE";
    /// The environment variable that sets the largest decoded buffer.
    pub const BYTES_VAR: &'static str = "TESSERA_MAX_IMAGE_BYTES";

    /// The defaults, with `TESSERA_MAX_IMAGE_SIDE` and
    /// `TESSERA_MAX_IMAGE_BYTES` applied where they are set; an error when
    /// one is set to something that is not a positive number.
    pub fn from_env() -> Result<Self> {
        let var = |name| std::env::var(name).ok();
        Self::from_values(var(Self::SIDE_VAR).as_deref(), var(Self::BYTES_VAR).as_deref())
    }

    /// The defaults with the given values of the two variables (`None`:
    /// unset), parsed as [`DecodeLimits::from_env`] parses them.
    pub fn from_values(side: Option<&str>, bytes: Option<&str>) -> Result<Self> {
        let mut limits = DecodeLimits::default();
        if let Some(side) = side {
            let n = parse_count(side, false)
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| Error::invalid(Self::SIDE_VAR, format!("expected a number of pixels such as 20000, found '{side}'")))?;
            limits.max_width = n;
            limits.max_height = n;
        }
        if let Some(bytes) = bytes {
            limits.max_bytes = parse_count(bytes, true).ok_or_else(|| {
                Error::invalid(Self::BYTES_VAR, format!("expected a byte count such as 1073741824 or 1G, found '{bytes}'"))
            })?;
        }
        Ok(limits)
    }

    /// The limits as the image crate applies them to its decoders.
    pub(super) fn image_limits(&self) -> image::Limits {
        let mut limits = image::Limits::default();
        limits.max_image_width = Some(self.max_width);
        limits.max_image_height = Some(self.max_height);
        limits.max_alloc = Some(self.max_bytes);
        limits
    }

    /// The image crate's limits without the width and height, so that the
    /// header can be read and its size named in [`DecodeLimits::check`].
    pub(super) fn header_limits(&self) -> image::Limits {
        let mut limits = image::Limits::default();
        limits.max_alloc = Some(self.max_bytes);
        limits
    }

    /// Rejects an image whose header claims more than these limits.
    pub(super) fn check(&self, name: &str, (w, h): (u32, u32), color: ColorType, decoded_bytes: u64) -> Result<()> {
        if w > self.max_width || h > self.max_height {
            return Err(Error::image(
                name,
                format!(
                    "the header claims {w}x{h} pixels, over the limit of {}x{} (set {} to raise it)",
                    self.max_width,
                    self.max_height,
                    Self::SIDE_VAR
                ),
            ));
        }
        if decoded_bytes > self.max_bytes {
            return Err(Error::image(
                name,
                format!(
                    "the header claims {w}x{h} pixels of {color:?}, {} once decoded, over the limit of {} (set {} to raise it)",
                    human_bytes(decoded_bytes),
                    human_bytes(self.max_bytes),
                    Self::BYTES_VAR
                ),
            ));
        }
        Ok(())
    }
}

/// A positive integer, with an optional binary `K`/`M`/`G`/`T` suffix
/// (`KiB`, `MB` and the like are read the same) when `suffixes`.
fn parse_count(text: &str, suffixes: bool) -> Option<u64> {
    let t = text.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(digits);
    let shift = match unit.trim().to_ascii_uppercase().trim_end_matches("IB").trim_end_matches('B') {
        "" => 0,
        "K" if suffixes => 10,
        "M" if suffixes => 20,
        "G" if suffixes => 30,
        "T" if suffixes => 40,
        _ => return None,
    };
    let n: u64 = number.parse().ok().filter(|&n| n > 0)?;
    n.checked_mul(1 << shift)
}

/// `bytes` in the largest binary unit that keeps it at least 1.
pub(super) fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_with_and_without_units() {
        let l = DecodeLimits::from_values(Some("20000"), Some("2G")).unwrap();
        assert_eq!((l.max_width, l.max_height, l.max_bytes), (20000, 20000, 2 << 30));
        assert_eq!(DecodeLimits::from_values(None, Some("1536 MiB")).unwrap().max_bytes, 1536 << 20);
        assert_eq!(DecodeLimits::from_values(None, Some("4096")).unwrap().max_bytes, 4096);
        assert_eq!(DecodeLimits::from_values(None, None).unwrap(), DecodeLimits::default());
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (side, bytes, var) in [
            (Some("big"), None, "TESSERA_MAX_IMAGE_SIDE"),
            (Some("0"), None, "TESSERA_MAX_IMAGE_SIDE"),
            (Some("5000000000"), None, "TESSERA_MAX_IMAGE_SIDE"),
            (Some("20K"), None, "TESSERA_MAX_IMAGE_SIDE"),
            (None, Some("-1"), "TESSERA_MAX_IMAGE_BYTES"),
            (None, Some("3X"), "TESSERA_MAX_IMAGE_BYTES"),
            (None, Some("99999999999T"), "TESSERA_MAX_IMAGE_BYTES"),
        ] {
            let msg = DecodeLimits::from_values(side, bytes).unwrap_err().to_string();
            assert!(msg.starts_with(var) && msg.contains("found '"), "{msg}");
        }
    }

    #[test]
    fn sizes_read_in_binary_units() {
        assert_eq!(human_bytes(512), "512 bytes");
        assert_eq!(human_bytes(512 << 20), "512.0 MiB");
        assert_eq!(human_bytes(12_884_508_675), "12.0 GiB");
    }
}
