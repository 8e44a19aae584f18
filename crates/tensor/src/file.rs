//! Opening input files safely: only regular files are opened (a FIFO would
//! block forever, a device or directory is not a model file), and a file
//! read into memory is allocated fallibly, so its size can never abort the
//! process.

use crate::{Error, Result};
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// What kind of non-regular file `metadata` describes, for messages.
fn kind(metadata: &std::fs::Metadata) -> &'static str {
    let t = metadata.file_type();
    if t.is_dir() {
        return "a directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if t.is_socket() {
            return "a socket";
        }
        if t.is_block_device() || t.is_char_device() {
            return "a device";
        }
    }
    "not a regular file"
}

fn not_regular(path: &Path, metadata: &std::fs::Metadata) -> Error {
    let msg = format!("is {}, not a regular file", kind(metadata));
    Error::Io { path: path.display().to_string(), source: io::Error::new(io::ErrorKind::InvalidInput, msg) }
}

fn io_err(path: &Path, source: io::Error) -> Error {
    Error::Io { path: path.display().to_string(), source }
}

/// Checks, without opening it, that `path` (after symlinks) is a regular
/// file; an [`Error::Io`] naming the path and what it is otherwise.
pub fn check_regular(path: &Path) -> Result<()> {
    let metadata = std::fs::metadata(path).map_err(|e| io_err(path, e))?;
    if metadata.is_file() {
        Ok(())
    } else {
        Err(not_regular(path, &metadata))
    }
}

/// Opens `path` for reading if it is a regular file. The type is checked
/// before opening (opening a FIFO blocks until a writer appears) and again
/// on the open handle, in case the path was replaced in between.
pub fn open_regular(path: &Path) -> Result<File> {
    check_regular(path)?;
    let file = File::open(path).map_err(|e| io_err(path, e))?;
    let metadata = file.metadata().map_err(|e| io_err(path, e))?;
    if !metadata.is_file() {
        return Err(not_regular(path, &metadata));
    }
    Ok(file)
}

/// Reads the whole regular file at `path`. The buffer is reserved fallibly
/// from the file's size: a file too large for memory is an
/// [`Error::OutOfMemory`], not an abort.
pub fn read_regular(path: &Path) -> Result<Vec<u8>> {
    let mut file = open_regular(path)?;
    let len = file.metadata().map_err(|e| io_err(path, e))?.len();
    let mut bytes = crate::try_vec(usize::try_from(len).unwrap_or(usize::MAX), &format!("reading {}", path.display()))?;
    file.read_to_end(&mut bytes).map_err(|e| io_err(path, e))?;
    Ok(bytes)
}

/// Reads the whole regular file at `path` as UTF-8 text.
pub fn read_regular_to_string(path: &Path) -> Result<String> {
    let bytes = read_regular(path)?;
    String::from_utf8(bytes).map_err(|e| io_err(path, io::Error::new(io::ErrorKind::InvalidData, format!("not UTF-8 text: {e}"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_are_refused_and_files_read() {
        let dir = std::env::temp_dir();
        let e = read_regular(&dir).unwrap_err().to_string();
        assert!(e.contains("directory") && e.contains(&dir.display().to_string()), "{e}");
        let path = dir.join(format!("tessera-file-test-{}", std::process::id()));
        std::fs::write(&path, b"abc").unwrap();
        assert_eq!(read_regular(&path).unwrap(), b"abc");
        assert_eq!(read_regular_to_string(&path).unwrap(), "abc");
        std::fs::write(&path, [0xff, 0xfe]).unwrap();
        assert!(read_regular_to_string(&path).unwrap_err().to_string().contains("UTF-8"));
        std::fs::remove_file(&path).unwrap();
        assert!(read_regular(&path).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let path = std::env::temp_dir().join(format!("tessera-fifo-test-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let made = std::process::Command::new("mkfifo").arg(&path).status();
        if !made.is_ok_and(|s| s.success()) {
            eprintln!("skipping: mkfifo is not available");
            return;
        }
        let e = open_regular(&path).unwrap_err().to_string();
        std::fs::remove_file(&path).unwrap();
        assert!(e.contains("FIFO"), "{e}");
    }
}
