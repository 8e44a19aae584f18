//! What the model commands share: string errors, progress bars on stderr.

use indicatif::{ProgressBar, ProgressStyle};

/// A command's result; the error is printed as it is.
pub type Res<T> = Result<T, String>;

/// Any error as its message.
pub fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// A progress bar on stderr (hidden when stderr is not a terminal).
pub fn bar(message: &str) -> ProgressBar {
    let bar = ProgressBar::new(0).with_message(message.to_string());
    bar.set_style(
        ProgressStyle::with_template("{msg:<18} [{bar:32}] {pos}/{len} {elapsed}").expect("valid template").progress_chars("=> "),
    );
    bar
}

/// A callback that moves `bar` to (done, total).
pub fn advance(bar: &ProgressBar) -> impl FnMut(usize, usize) + '_ {
    move |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    }
}
