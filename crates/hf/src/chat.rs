//! Chat templates: the Jinja template a checkpoint ships to turn a list of
//! messages into a prompt, rendered as transformers renders it
//! (`apply_chat_template`): a Jinja environment with `trim_blocks` and
//! `lstrip_blocks`, loop controls, Python's string methods (`strip`,
//! `capitalize`, `startswith`...), `tojson`, `raise_exception(msg)` and
//! `strftime_now(fmt)`, over `messages`, `add_generation_prompt` and the
//! tokenizer's special tokens.
//!
//! Where a checkpoint keeps its template, in the order transformers reads
//! them: `chat_template.jinja`, `chat_template.json` (`{"chat_template":
//! ...}`), the processor's `processor_config.json`, then
//! `tokenizer_config.json` (`"chat_template"` as a string, or a list of
//! `{"name", "template"}` of which `default` is taken).

use crate::config::{parse_object, read_object};
use crate::error::{read_text, Error, Result};
use minijinja::{Environment, ErrorKind, UndefinedBehavior, Value};
use serde_json::Value as Json;
use std::path::Path;

/// The files that may hold a template, in the order they are read.
pub const TEMPLATE_FILES: [&str; 4] = ["chat_template.jinja", "chat_template.json", "processor_config.json", "tokenizer_config.json"];

/// A compiled chat template.
pub struct ChatTemplate {
    env: Environment<'static>,
    file: String,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate").field("file", &self.file).finish()
    }
}

impl ChatTemplate {
    /// Compiles `source`; `file` names it in errors.
    pub fn new(source: &str, file: &str) -> Result<ChatTemplate> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_undefined_behavior(UndefinedBehavior::Lenient);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", |msg: String| -> std::result::Result<Value, minijinja::Error> {
            Err(minijinja::Error::new(ErrorKind::InvalidOperation, msg))
        });
        env.add_function("strftime_now", |fmt: String| -> std::result::Result<Value, minijinja::Error> {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
            Ok(Value::from(crate::time::strftime(&fmt, now)))
        });
        env.add_template_owned("chat", source.to_string())
            .map_err(|e| Error::tokenizer(file, format!("the chat template does not compile: {e:#}")))?;
        Ok(ChatTemplate { env, file: file.to_string() })
    }

    /// The template of checkpoint directory `dir` (see the module doc for
    /// the files read), or `None` when no file holds one. A file that holds
    /// a malformed template is an error.
    pub fn from_dir(dir: &Path) -> Result<Option<ChatTemplate>> {
        for name in TEMPLATE_FILES {
            let path = dir.join(name);
            if !path.is_file() {
                continue;
            }
            let file = path.display().to_string();
            let source = if name.ends_with(".jinja") {
                Some(read_text(&path)?)
            } else {
                let (root, _) = read_object(&path)?;
                template_field(root.get("chat_template"), &file)?
            };
            if let Some(source) = source {
                return ChatTemplate::new(&source, &file).map(Some);
            }
        }
        Ok(None)
    }

    /// The file the template came from.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// Renders `messages` (a JSON list of `{"role", "content"}`) with
    /// `add_generation_prompt` and the extra variables of `context` (the
    /// tokenizer's `bos_token`, `eos_token`...).
    pub fn render(&self, messages: &Json, add_generation_prompt: bool, context: &serde_json::Map<String, Json>) -> Result<String> {
        let mut vars = context.clone();
        vars.insert("messages".into(), messages.clone());
        vars.insert("add_generation_prompt".into(), Json::Bool(add_generation_prompt));
        let template = self.env.get_template("chat").map_err(|e| Error::tokenizer(&self.file, e.to_string()))?;
        template
            .render(Value::from_serialize(&vars))
            .map_err(|e| Error::tokenizer(&self.file, format!("rendering the chat template failed: {e:#}")))
    }
}

/// A `chat_template` field: a string, a list of named templates (the
/// `default` one), or absent.
fn template_field(field: Option<&Json>, file: &str) -> Result<Option<String>> {
    match field {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(s)) => Ok(Some(s.clone())),
        Some(Json::Array(list)) => {
            let default = list.iter().find(|t| t.get("name").and_then(Json::as_str) == Some("default"));
            match default.and_then(|t| t.get("template")).and_then(Json::as_str) {
                Some(s) => Ok(Some(s.to_string())),
                None => Err(Error::config(file, "field 'chat_template': a list of templates without a 'default' one")),
            }
        }
        Some(other) => Err(Error::config(file, format!("field 'chat_template': expected a string or a list, got {other}"))),
    }
}

/// Parses a `chat_template.json` text (for tests and in-memory sources).
pub fn template_from_json(text: &str, file: &str) -> Result<Option<String>> {
    template_field(parse_object(text, file)?.get("chat_template"), file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_with_python_methods_and_trimmed_blocks() {
        let t = ChatTemplate::new(
            "{% for m in messages %}\n{{ m['role'].capitalize() }}: {{ m['content'].strip() }}\n{% endfor %}\n{% if add_generation_prompt %}A:{% endif %}",
            "t.jinja",
        )
        .unwrap();
        let messages = json!([{"role": "user", "content": "  hi  "}]);
        assert_eq!(t.render(&messages, true, &Default::default()).unwrap(), "User: hi\nA:");
    }

    #[test]
    fn errors_name_the_file() {
        let e = ChatTemplate::new("{% for %}", "bad.jinja").unwrap_err().to_string();
        assert!(e.contains("bad.jinja") && e.contains("compile"), "{e}");
        let t = ChatTemplate::new("{{ raise_exception('no system role') }}", "t.jinja").unwrap();
        let e = t.render(&json!([]), false, &Default::default()).unwrap_err().to_string();
        assert!(e.contains("no system role") && e.contains("t.jinja"), "{e}");
        assert!(template_from_json(r#"{"chat_template": 3}"#, "c.json").unwrap_err().to_string().contains("c.json"));
    }

    #[test]
    fn named_templates_take_the_default() {
        let s =
            template_from_json(r#"{"chat_template": [{"name": "tool_use", "template": "x"}, {"name": "default", "template": "y"}]}"#, "c")
                .unwrap();
        assert_eq!(s.as_deref(), Some("y"));
        assert_eq!(template_from_json("{}", "c").unwrap(), None);
    }
}
