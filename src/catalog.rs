//! Definitions as data, for all four axes of a run (systems, topologies, workloads, faults):
//! built into reckon from the repository's folders, or read from a user's file. A [`Catalog`]
//! finds a definition's source; each axis parses it. Every error names what to do: the known
//! names and the flag for a file of one's own, or the file and line that is wrong.

use std::path::Path;

/// A definition's text and where it came from.
#[derive(Clone, Debug)]
pub struct Source {
    /// The definition's name: a built-in's, or the file's stem.
    pub name: String,
    /// Where it came from, as errors name it: `systems/etcd.toml`, or the user's path.
    pub file: String,
    pub text: String,
}

impl Source {
    /// The 1-based line where `needle` first occurs (1 if it does not).
    pub fn line_of(&self, needle: &str) -> usize {
        self.text
            .find(needle)
            .map(|i| crate::line_at(&self.text, i))
            .unwrap_or(1)
    }

    /// The text as `T`; a TOML error as (line, message).
    pub fn toml<T: serde::de::DeserializeOwned>(&self) -> Result<T, (usize, String)> {
        toml::from_str(&self.text).map_err(|e| crate::toml_error(&self.text, &e))
    }
}

/// Why a definition could not be found.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("unknown {kind} '{name}'; known {plural}: {known}{}", if flag.is_empty() { String::new() } else { format!(" (or give your own with {flag})") })]
    Unknown {
        kind: &'static str,
        plural: &'static str,
        flag: &'static str,
        name: String,
        known: String,
    },
    #[error("cannot read {kind} file {file}: {source}")]
    Io {
        kind: &'static str,
        file: String,
        source: std::io::Error,
    },
}

/// The definitions of one axis.
pub struct Catalog {
    /// What a definition is, and what several are: "system", "systems".
    pub kind: &'static str,
    pub plural: &'static str,
    /// The repository folder of the built-ins.
    pub dir: &'static str,
    /// The flag that takes a file of one's own ("" if none).
    pub flag: &'static str,
    /// Built-in definitions: name and text.
    pub builtin: &'static [(&'static str, &'static str)],
}

impl Catalog {
    /// The built-in names, comma separated.
    pub fn known(&self) -> String {
        self.names().collect::<Vec<_>>().join(", ")
    }

    /// The built-in names.
    pub fn names(&self) -> impl Iterator<Item = &'static str> {
        self.builtin.iter().map(|(n, _)| *n)
    }

    /// A built-in definition by name.
    pub fn builtin(&self, name: &str) -> Result<Source, CatalogError> {
        let (n, text) = self
            .builtin
            .iter()
            .find(|(n, _)| *n == name)
            .ok_or_else(|| CatalogError::Unknown {
                kind: self.kind,
                plural: self.plural,
                flag: self.flag,
                name: name.into(),
                known: self.known(),
            })?;
        Ok(Source {
            name: (*n).into(),
            file: format!("{}/{n}.toml", self.dir),
            text: (*text).into(),
        })
    }

    /// A user's definition; its name is the file's stem.
    pub fn file(&self, path: &Path) -> Result<Source, CatalogError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| CatalogError::Io {
            kind: self.kind,
            file: file.clone(),
            source,
        })?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "custom".into());
        Ok(Source { name, file, text })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const C: Catalog = Catalog {
        kind: "widget",
        plural: "widgets",
        dir: "widgets",
        flag: "--widget-file",
        builtin: &[("a", "x = 1\n"), ("b", "\ny = [\n")],
    };

    #[test]
    fn finds_builtins_and_files_and_says_what_to_do() {
        let a = C.builtin("a").unwrap();
        assert_eq!((a.name.as_str(), a.file.as_str()), ("a", "widgets/a.toml"));
        assert_eq!(
            C.builtin("z").unwrap_err().to_string(),
            "unknown widget 'z'; known widgets: a, b (or give your own with --widget-file)"
        );
        let e = C
            .file(Path::new("/nonexistent/w.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("cannot read widget file /nonexistent/w.toml: "),
            "{e}"
        );
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Y {
            y: Vec<u32>,
        }
        let (line, _) = C.builtin("b").unwrap().toml::<Y>().unwrap_err();
        assert_eq!(line, 2);
        assert_eq!(C.builtin("b").unwrap().line_of("y ="), 2);
    }
}
