//! `#[derive(Config)]`: a check's settings as a struct, parsed from the
//! manifest's `[checks.*.config]` and described to the host.
//!
//! The expansion does two things from the one declaration, so they cannot
//! drift apart:
//!
//! - `impl vigil_sdk::config::Config`: `from_pairs` reads every field with
//!   the SDK's `FromConfig` parsers (the same messages as the hand-written
//!   accessors) after rejecting unknown keys;
//! - the schema as JSON, in `Config::SCHEMA` and, on wasm, in a custom
//!   section named `vigil:config-schema` of the core module, which
//!   `vigil inspect` prints and `vigil validate` checks manifests against.
//!
//! The section's format is documented in docs/writing-checks.md (version 1).

use proc_macro2::TokenStream as TokenStream2;
use quote::{format_ident, quote};
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields, GenericArgument, LitStr, PathArguments, Type};

/// The custom section's name; the host looks for exactly this.
const SECTION: &str = "vigil:config-schema";

/// What a value of each field looks like, as the host validates it.
const KINDS: &[&str] = &[
    "string", "bool", "integer", "number", "duration", "size", "port", "url", "host", "path",
];

/// One field, as declared.
struct Field {
    ident: syn::Ident,
    key: String,
    kind: String,
    /// Inclusive bounds of an integer kind.
    range: Option<(i128, i128)>,
    /// Shape of the field's Rust type.
    shape: Shape,
    default: Option<String>,
    doc: String,
}

enum Shape {
    /// `T`: required unless it has a default.
    Plain,
    /// `Option<T>`: optional, no default.
    Optional,
    /// `Vec<(String, String)>` with `prefix = "..."`: every key with the
    /// prefix, the prefix removed.
    Prefixed,
}

pub fn expand(input: TokenStream2) -> syn::Result<TokenStream2> {
    let input: DeriveInput = syn::parse2(input)?;
    if !input.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &input.generics,
            "#[derive(Config)] cannot go on a generic struct: its schema is fixed at build time",
        ));
    }
    let Data::Struct(data) = &input.data else {
        return Err(syn::Error::new(
            input.ident.span(),
            "#[derive(Config)] goes on a struct with named fields, one per config key",
        ));
    };
    let Fields::Named(named) = &data.fields else {
        return Err(syn::Error::new(
            data.fields.span(),
            "#[derive(Config)] needs named fields, one per config key",
        ));
    };
    let mut fields = Vec::new();
    let mut errors: Vec<syn::Error> = Vec::new();
    for f in &named.named {
        match field(f) {
            Ok(field) => fields.push(field),
            Err(e) => errors.push(e),
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for (f, raw) in fields.iter().zip(&named.named) {
        if !seen.insert(f.key.clone()) {
            errors.push(syn::Error::new_spanned(
                raw,
                format!("config key `{}` is declared twice", f.key),
            ));
        }
    }
    if let Some(e) = super::combine(errors) {
        return Err(e);
    }

    let name = &input.ident;
    let json = schema_json(&fields);
    let keys: Vec<&String> = fields.iter().map(|f| &f.key).collect();
    let reads = fields.iter().map(|f| {
        let ident = &f.ident;
        let key = &f.key;
        let read = match (&f.shape, &f.default) {
            (Shape::Prefixed, _) => {
                quote! { ::vigil_sdk::config::__private::prefixed(pairs, #key) }
            }
            (Shape::Optional, _) => {
                quote! { ::vigil_sdk::config::__private::optional(pairs, #key)? }
            }
            (Shape::Plain, Some(default)) => {
                quote! { ::vigil_sdk::config::__private::defaulted(pairs, #key, #default)? }
            }
            (Shape::Plain, None) => {
                quote! { ::vigil_sdk::config::__private::required(pairs, #key)? }
            }
        };
        quote! { #ident: #read }
    });
    let bytes = syn::LitByteStr::new(json.as_bytes(), name.span());
    let len = json.len();
    let json_lit = LitStr::new(&json, name.span());
    let section_static = format_ident!("__VIGIL_CONFIG_SCHEMA_{}", name);
    Ok(quote! {
        impl ::vigil_sdk::config::Config for #name {
            const SCHEMA: &'static str = #json_lit;
            const KEYS: &'static [&'static str] = &[#(#keys),*];

            fn from_pairs(
                pairs: &[(::std::string::String, ::std::string::String)],
            ) -> ::core::result::Result<Self, ::vigil_sdk::Outcome> {
                ::vigil_sdk::config::__private::reject_unknown(pairs, Self::KEYS)?;
                ::core::result::Result::Ok(#name { #(#reads),* })
            }
        }

        // The schema travels inside the component: wasm-ld keeps custom
        // sections of the core module and the component wraps that module
        // unchanged, so the host finds it without running anything.
        #[cfg(target_family = "wasm")]
        #[doc(hidden)]
        #[used]
        #[allow(non_upper_case_globals)]
        // SAFETY: the section holds plain bytes that no code reads, and its
        // name is not one the linker or the component model give meaning
        // to, so placing the static there cannot change how anything runs.
        #[unsafe(link_section = #SECTION)]
        static #section_static: [u8; #len] = *#bytes;
    })
}

fn field(f: &syn::Field) -> syn::Result<Field> {
    let Some(ident) = f.ident.clone() else {
        return Err(syn::Error::new_spanned(f, "a config field needs a name"));
    };
    let mut key = ident.to_string().trim_start_matches("r#").replace('_', "-");
    let mut kind: Option<String> = None;
    let mut default: Option<String> = None;
    let mut prefix: Option<String> = None;
    let mut doc = Vec::new();
    for attr in &f.attrs {
        if attr.path().is_ident("doc") {
            if let syn::Meta::NameValue(nv) = &attr.meta
                && let syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(s),
                    ..
                }) = &nv.value
            {
                doc.push(s.value().trim().to_string());
            }
        } else if attr.path().is_ident("config") {
            attr.parse_nested_meta(|meta| {
                let value = || -> syn::Result<String> { Ok(meta.value()?.parse::<LitStr>()?.value()) };
                if meta.path.is_ident("rename") {
                    key = value()?;
                } else if meta.path.is_ident("kind") {
                    let k = value()?;
                    if !KINDS.contains(&k.as_str()) {
                        return Err(meta.error(format!(
                            "unknown kind `{k}`; one of: {}",
                            KINDS.join(", ")
                        )));
                    }
                    kind = Some(k);
                } else if meta.path.is_ident("default") {
                    default = Some(value()?);
                } else if meta.path.is_ident("prefix") {
                    prefix = Some(value()?);
                } else {
                    return Err(meta.error(
                        "unknown config attribute; expected `rename`, `kind`, `default` or `prefix`",
                    ));
                }
                Ok(())
            })?;
        }
    }
    if key.is_empty() || key.contains(char::is_whitespace) {
        return Err(syn::Error::new_spanned(
            &ident,
            "a config key cannot be empty or contain whitespace",
        ));
    }
    let doc = doc
        .into_iter()
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ");

    if let Some(prefix) = prefix {
        if default.is_some() {
            return Err(syn::Error::new_spanned(
                &f.ty,
                "a `prefix` field collects keys; it has no default",
            ));
        }
        if !is_pairs(&f.ty) {
            return Err(syn::Error::new_spanned(
                &f.ty,
                "a `prefix` field must be `Vec<(String, String)>`",
            ));
        }
        if prefix.len() < 2 || !prefix.ends_with('.') {
            return Err(syn::Error::new_spanned(
                &ident,
                "a prefix is a name ending in `.`, e.g. \"header.\"",
            ));
        }
        return Ok(Field {
            ident,
            key: prefix,
            kind: kind.unwrap_or_else(|| "string".into()),
            range: None,
            shape: Shape::Prefixed,
            default: None,
            doc,
        });
    }

    let (inner, shape) = match option_inner(&f.ty) {
        Some(inner) => (inner, Shape::Optional),
        None => (&f.ty, Shape::Plain),
    };
    if matches!(shape, Shape::Optional) && default.is_some() {
        return Err(syn::Error::new_spanned(
            &f.ty,
            "an `Option` field has no default: drop `Option` or the default",
        ));
    }
    let (natural, range) = natural_kind(inner);
    let kind = match (kind, natural) {
        (Some(k), _) => k,
        (None, Some(k)) => k.to_string(),
        (None, None) => {
            return Err(syn::Error::new_spanned(
                inner,
                format!(
                    "cannot tell what kind of value this is; add #[config(kind = \"...\")] with one of: {}",
                    KINDS.join(", ")
                ),
            ));
        }
    };
    Ok(Field {
        ident,
        key,
        range: if kind == "integer" { range } else { None },
        kind,
        shape,
        default,
        doc,
    })
}

/// `T` of `Option<T>`.
fn option_inner(ty: &Type) -> Option<&Type> {
    let Type::Path(path) = ty else { return None };
    let last = path.path.segments.last()?;
    if last.ident != "Option" {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    match args.args.first()? {
        GenericArgument::Type(inner) => Some(inner),
        _ => None,
    }
}

/// `Vec<(String, String)>`.
fn is_pairs(ty: &Type) -> bool {
    let Type::Path(path) = ty else { return false };
    let Some(last) = path.path.segments.last() else {
        return false;
    };
    if last.ident != "Vec" {
        return false;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return false;
    };
    matches!(args.args.first(), Some(GenericArgument::Type(Type::Tuple(t))) if t.elems.len() == 2)
}

/// The kind a field's type implies, by the last segment of its path, and
/// the bounds of an integer type.
fn natural_kind(ty: &Type) -> (Option<&'static str>, Option<(i128, i128)>) {
    let Type::Path(path) = ty else {
        return (None, None);
    };
    let Some(last) = path.path.segments.last() else {
        return (None, None);
    };
    let int = |lo: i128, hi: i128| (Some("integer"), Some((lo, hi)));
    match last.ident.to_string().as_str() {
        "String" => (Some("string"), None),
        "bool" => (Some("bool"), None),
        "u8" => int(0, u8::MAX.into()),
        "u16" => int(0, u16::MAX.into()),
        "u32" => int(0, u32::MAX.into()),
        "u64" | "usize" => int(0, u64::MAX.into()),
        "i32" => int(i32::MIN.into(), i32::MAX.into()),
        "i64" => int(i64::MIN.into(), i64::MAX.into()),
        "f64" => (Some("number"), None),
        "Duration" => (Some("duration"), None),
        "Size" => (Some("size"), None),
        "Port" => (Some("port"), None),
        _ => (None, None),
    }
}

/// Version 1 of the schema:
/// `{"version":1,"keys":[{"name","kind","required","default"?,"prefix"?,"min"?,"max"?,"doc"}]}`.
fn schema_json(fields: &[Field]) -> String {
    let mut out = String::from("{\"version\":1,\"keys\":[");
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let required = matches!(f.shape, Shape::Plain) && f.default.is_none();
        out.push_str(&format!(
            "{{\"name\":{},\"kind\":{},\"required\":{required}",
            string(&f.key),
            string(&f.kind)
        ));
        if let Some(d) = &f.default {
            out.push_str(&format!(",\"default\":{}", string(d)));
        }
        if matches!(f.shape, Shape::Prefixed) {
            out.push_str(",\"prefix\":true");
        }
        if let Some((lo, hi)) = f.range {
            out.push_str(&format!(",\"min\":{lo},\"max\":{hi}"));
        }
        out.push_str(&format!(",\"doc\":{}}}", string(&f.doc)));
    }
    out.push_str("]}");
    out
}

/// A JSON string literal.
fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(item: TokenStream2) -> String {
        match expand(item) {
            Ok(tokens) => panic!("expected an error, got {tokens}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn schema_of_a_struct() {
        let out = expand(quote! {
            struct Settings {
                /// Where to connect.
                /// Second "line".
                #[config(kind = "host", default = "127.0.0.1")]
                host: String,
                port: Port,
                max_rss: Option<Size>,
                #[config(prefix = "header.")]
                headers: Vec<(String, String)>,
                retries: u8,
            }
        })
        .map(|t| t.to_string())
        .unwrap_or_else(|e| e.to_string());
        assert!(out.contains("vigil:config-schema"), "{out}");
        assert!(out.contains("from_pairs"), "{out}");
        let fields = vec![Field {
            ident: format_ident!("a"),
            key: "max-rss".into(),
            kind: "size".into(),
            range: None,
            shape: Shape::Optional,
            default: None,
            doc: "A \"quoted\"\\ doc".into(),
        }];
        assert_eq!(
            schema_json(&fields),
            r#"{"version":1,"keys":[{"name":"max-rss","kind":"size","required":false,"doc":"A \"quoted\"\\ doc"}]}"#
        );
    }

    #[test]
    fn rejects_misuse() {
        assert!(
            error(quote!(
                struct S(u32);
            ))
            .contains("named fields")
        );
        assert!(
            error(quote!(
                enum E {
                    A,
                }
            ))
            .contains("struct with named fields")
        );
        assert!(
            error(quote!(
                struct S {
                    x: Vec<u8>,
                }
            ))
            .contains("kind")
        );
        assert!(
            error(quote!(
                struct S {
                    #[config(kind = "colour")]
                    x: String,
                }
            ))
            .contains("unknown kind")
        );
        assert!(
            error(quote!(
                struct S {
                    #[config(default = "1")]
                    x: Option<u8>,
                }
            ))
            .contains("no default")
        );
        assert!(
            error(quote!(
                struct S {
                    a_b: String,
                    #[config(rename = "a-b")]
                    c: String,
                }
            ))
            .contains("declared twice")
        );
    }
}
