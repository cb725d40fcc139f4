//! The warehouse location and the paths of its tables. Names are validated before any URL is
//! built or directory created, so nothing is ever written outside the warehouse.

use std::path::{Component, Path};

use url::Url;

use crate::error::{Error, Result};

/// True when `name` is a safe schema or table name: `[a-z_][a-z0-9_]*`, at most 128 bytes.
/// Such a name cannot contain `/`, `.`, `%`, `\`, NUL, or anything an object store or URL
/// parser would treat as a path step.
pub fn is_safe_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'_'))
        && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'))
        && name.len() <= 128
}

/// Checks a schema or table name; the error says what is allowed.
pub fn check_name(what: &'static str, name: &str) -> Result<()> {
    if is_safe_name(name) {
        Ok(())
    } else {
        Err(Error::InvalidName {
            what,
            name: name.to_owned(),
            reason: "use lowercase letters, digits and `_`, starting with a letter or `_` (at most 128 characters)",
        })
    }
}

/// The root URL of a warehouse given as a local path (created if missing) or an object-store
/// URL (`s3://`, `az://`, `gs://`, with the matching cargo feature).
pub fn warehouse_url(location: &str) -> Result<Url> {
    if location.trim().is_empty() {
        return Err(Error::InvalidName {
            what: "warehouse location",
            name: location.to_owned(),
            reason: "give a directory or an object-store URL",
        });
    }
    if location.contains('\0') {
        return Err(Error::InvalidName {
            what: "warehouse location",
            name: location.to_owned(),
            reason: "it contains a NUL byte",
        });
    }
    let url = match Url::parse(location) {
        Ok(url) if url.scheme().len() > 1 => {
            // Table paths are joined to the URL's path: a query or fragment would end up
            // before them.
            if url.query().is_some() || url.fragment().is_some() {
                return Err(Error::InvalidName {
                    what: "warehouse location",
                    name: location.to_owned(),
                    reason: "a URL with `?` or `#` (a query or fragment) cannot hold tables; \
                             give the bucket and path alone",
                });
            }
            if url.scheme() == "file" {
                // `file:data/wh` parses as `/data/wh`, not as the relative `data/wh`.
                if !location.starts_with("file://") {
                    return Err(Error::InvalidName {
                        what: "warehouse location",
                        name: location.to_owned(),
                        reason: "write a file URL as `file:///absolute/path`, or give the \
                                 path itself",
                    });
                }
                let path = url.to_file_path().map_err(|()| Error::InvalidName {
                    what: "warehouse location",
                    name: location.to_owned(),
                    reason: "not a valid file URL",
                })?;
                return local_url(&path, location);
            }
            check_scheme(&url, location)?;
            url
        }
        // Not a URL (or a Windows drive letter): a local path.
        _ => return local_url(Path::new(location), location),
    };
    Ok(with_trailing_slash(url))
}

fn check_scheme(url: &Url, location: &str) -> Result<()> {
    let supported: &[&str] = &[
        #[cfg(feature = "s3")]
        "s3",
        #[cfg(feature = "s3")]
        "s3a",
        #[cfg(feature = "azure")]
        "az",
        #[cfg(feature = "azure")]
        "abfs",
        #[cfg(feature = "azure")]
        "abfss",
        #[cfg(feature = "gcs")]
        "gs",
        "memory",
    ];
    if supported.contains(&url.scheme()) {
        Ok(())
    } else {
        Err(Error::InvalidName {
            what: "warehouse location",
            name: location.to_owned(),
            reason: "unsupported scheme: use a local path (one whose first part holds a `:` is \
                     read as a URL: write `./` before it), or build with the `s3`, `azure` or \
                     `gcs` feature for object stores",
        })
    }
}

/// The directory of a warehouse given as a local path or `file://` URL (`None`: an object
/// store), resolved as [`warehouse_url`] resolves it, without creating it.
pub(crate) fn local_directory(location: &str) -> Result<Option<std::path::PathBuf>> {
    match Url::parse(location) {
        Ok(url) if url.scheme() == "file" => {
            url.to_file_path()
                .map(Some)
                .map_err(|()| Error::InvalidName {
                    what: "warehouse location",
                    name: location.to_owned(),
                    reason: "not a valid file URL",
                })
        }
        Ok(url) if url.scheme().len() > 1 => Ok(None),
        _ => normalized(Path::new(location)).map(Some),
    }
}

fn local_url(path: &Path, location: &str) -> Result<Url> {
    let normalized = normalized(path)?;
    std::fs::create_dir_all(&normalized).map_err(|source| Error::Io {
        context: format!("creating the warehouse directory {}", normalized.display()),
        source,
    })?;
    let url = Url::from_directory_path(&normalized).map_err(|()| Error::InvalidName {
        what: "warehouse location",
        name: location.to_owned(),
        reason: "not a usable directory path",
    })?;
    Ok(url)
}

/// `path` made absolute, with `.` and `..` resolved lexically.
pub(crate) fn normalized(path: &Path) -> Result<std::path::PathBuf> {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|source| Error::Io {
                context: "reading the current directory".into(),
                source,
            })?
            .join(path)
    };
    // Resolve `.` and `..` lexically: the warehouse is where the user pointed, symlinks included.
    let mut normalized = std::path::PathBuf::new();
    for component in absolute.components() {
        match component {
            Component::ParentDir => {
                normalized.pop();
            }
            Component::CurDir => {}
            other => normalized.push(other),
        }
    }
    Ok(normalized)
}

/// The local path of a `file://` URL (`Url::to_file_path` converts the path of any scheme:
/// `memory:///wh/` would become `/wh/`).
pub(crate) fn local_path(url: &Url) -> Option<std::path::PathBuf> {
    (url.scheme() == "file")
        .then(|| url.to_file_path().ok())
        .flatten()
}

fn with_trailing_slash(mut url: Url) -> Url {
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    url
}

/// `<warehouse>/<schema>/<table>/`, after checking both names.
pub fn table_url(warehouse: &Url, schema: &str, table: &str) -> Result<Url> {
    check_name("schema name", schema)?;
    check_name("table name", table)?;
    let url = warehouse.join(&format!("{schema}/{table}/")).map_err(|e| {
        Error::msg(format!(
            "cannot build the location of {schema}.{table}: {e}"
        ))
    })?;
    // Defence in depth: the result must stay under the warehouse.
    if !url.as_str().starts_with(warehouse.as_str()) {
        return Err(Error::InvalidName {
            what: "table location",
            name: format!("{schema}.{table}"),
            reason: "it resolves outside the warehouse",
        });
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["sales", "_tmp", "dim_customer_2"] {
            assert!(is_safe_name(ok));
        }
        for bad in [
            "", "../x", "/abs", "a/b", "a.b", "%2e%2e", "a\0b", "Sales", "a b", "é",
        ] {
            assert!(!is_safe_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn table_urls_stay_inside() {
        let root = Url::parse("memory:///wh/").unwrap();
        assert_eq!(
            table_url(&root, "gold", "dim").unwrap().as_str(),
            "memory:///wh/gold/dim/"
        );
        assert!(table_url(&root, "..", "x").is_err());
        assert!(table_url(&root, "gold", "%2e%2e").is_err());
    }
}
