//! Attribute macros for `vigil-sdk`; use them through `vigil_sdk::check`,
//! `vigil_sdk::loader` and `vigil_sdk::Config`, which document them.
//!
//! Both expand to the original item plus an anonymous `const` block that
//! implements the SDK's generated `Guest` trait on a private type and
//! invokes the SDK's `export!` macro for it. Misuse is reported with
//! `syn::Error` at the offending tokens; the macros never panic.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, ImplItem, ItemFn, ItemImpl, ReturnType};

mod config;

/// Export a function `fn(Target) -> Outcome` as the component's `check`.
/// See `vigil_sdk::check`.
#[proc_macro_attribute]
pub fn check(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand(attr.into(), item.into(), expand_check).into()
}

/// Export an `impl Loader for T` as the component's `spawn` and `decide`.
/// See `vigil_sdk::loader`.
#[proc_macro_attribute]
pub fn loader(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand(attr.into(), item.into(), expand_loader).into()
}

/// Derive `vigil_sdk::config::Config` for a struct of settings, and embed
/// its schema in the component. See `vigil_sdk::Config`.
#[proc_macro_derive(Config, attributes(config))]
pub fn derive_config(item: TokenStream) -> TokenStream {
    config::expand(item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Run an expansion; on error, keep the item (so that code using it does
/// not pile up follow-on errors) and add the error.
fn expand(
    attr: TokenStream2,
    item: TokenStream2,
    f: fn(TokenStream2, TokenStream2) -> syn::Result<TokenStream2>,
) -> TokenStream2 {
    match f(attr, item.clone()) {
        Ok(tokens) => tokens,
        Err(error) => {
            let error = error.into_compile_error();
            quote! { #error #item }
        }
    }
}

fn no_arguments(attr: TokenStream2, name: &str) -> syn::Result<()> {
    if attr.is_empty() {
        Ok(())
    } else {
        Err(syn::Error::new_spanned(
            attr,
            format!("#[{name}] takes no arguments"),
        ))
    }
}

/// An item both expansions define in the caller's module, so that a second
/// `#[check]` or `#[loader]` there fails with "the name
/// `__vigil_sdk_one_check_or_loader_per_crate` is defined multiple times",
/// which says what is wrong. (Across modules the duplicate exports still
/// collide: "symbol `cabi_post_check` is already defined".)
fn once_marker() -> TokenStream2 {
    quote! {
        #[doc(hidden)]
        #[allow(non_upper_case_globals, dead_code)]
        const __vigil_sdk_one_check_or_loader_per_crate: () = ();
    }
}

const CHECK_SHAPE: &str = "expected `fn check(target: Target) -> Outcome` (any name)";

fn expand_check(attr: TokenStream2, item: TokenStream2) -> syn::Result<TokenStream2> {
    no_arguments(attr, "check")?;
    let func: ItemFn = syn::parse2(item).map_err(|e| {
        syn::Error::new(
            e.span(),
            format!("#[check] goes on a function: {CHECK_SHAPE}"),
        )
    })?;
    let sig = &func.sig;
    let mut errors = Vec::new();
    if let Some(token) = &sig.asyncness {
        errors.push(syn::Error::new_spanned(
            token,
            "a #[check] function cannot be async: it runs to completion once per call, \
             and capability calls (http, tcp, ...) block inside the host",
        ));
    }
    if let Some(token) = &sig.unsafety {
        errors.push(syn::Error::new_spanned(
            token,
            "a #[check] function cannot be unsafe",
        ));
    }
    if let Some(abi) = &sig.abi {
        errors.push(syn::Error::new_spanned(
            abi,
            "a #[check] function cannot have an ABI: the SDK exports it",
        ));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        errors.push(syn::Error::new_spanned(
            &sig.generics,
            "a #[check] function cannot be generic: the exported function has one fixed type",
        ));
    }
    if let Some(variadic) = &sig.variadic {
        errors.push(syn::Error::new_spanned(
            variadic,
            "a #[check] function cannot be variadic",
        ));
    }
    let arg_ty = match sig.inputs.len() {
        1 => match &sig.inputs[0] {
            FnArg::Typed(arg) => Some(arg.ty.clone()),
            FnArg::Receiver(receiver) => {
                errors.push(syn::Error::new_spanned(
                    receiver,
                    format!("a #[check] function cannot take `self`: {CHECK_SHAPE}"),
                ));
                None
            }
        },
        0 => {
            errors.push(syn::Error::new(
                sig.paren_token.span.join(),
                format!("a #[check] function takes one argument, the target: {CHECK_SHAPE}"),
            ));
            None
        }
        n => {
            errors.push(syn::Error::new_spanned(
                &sig.inputs,
                format!(
                    "a #[check] function takes one argument, the target, not {n}: {CHECK_SHAPE}"
                ),
            ));
            None
        }
    };
    let ret_span = match &sig.output {
        ReturnType::Default => {
            errors.push(syn::Error::new(
                sig.paren_token.span.close(),
                format!(
                    "a #[check] function must return `Outcome` or `Result<Outcome, E>`: \
                     {CHECK_SHAPE}"
                ),
            ));
            Span::call_site()
        }
        ReturnType::Type(_, ty) => ty.span(),
    };
    if let Some(combined) = combine(errors) {
        return Err(combined);
    }
    let Some(arg_ty) = arg_ty else {
        return Err(syn::Error::new_spanned(&sig.inputs, CHECK_SHAPE));
    };

    let name = &sig.ident;
    // Spanned so that a wrong parameter type or return type is reported at
    // the user's tokens rather than at the attribute.
    let call = quote_spanned! {arg_ty.span()=>
        #name(::vigil_sdk::__private::target_arg(target))
    };
    let verdict = quote_spanned! {ret_span=> verdict };
    let convert = quote_spanned! {ret_span=>
        ::vigil_sdk::IntoOutcome::into_outcome(#verdict)
    };
    let once = once_marker();
    Ok(quote! {
        #func

        #once

        const _: () = {
            #[doc(hidden)]
            struct __VigilCheck;

            impl ::vigil_sdk::__private::checker::Guest for __VigilCheck {
                fn check(target: ::vigil_sdk::Target) -> ::vigil_sdk::Outcome {
                    let #verdict = #call;
                    #convert
                }
            }

            ::vigil_sdk::__private::checker::export_checker!(
                __VigilCheck with_types_in ::vigil_sdk::__private::checker
            );
        };
    })
}

const LOADER_SHAPE: &str = "expected `impl vigil_sdk::loader::Loader for YourType { .. }`";

fn expand_loader(attr: TokenStream2, item: TokenStream2) -> syn::Result<TokenStream2> {
    no_arguments(attr, "loader")?;
    let imp: ItemImpl = syn::parse2(item).map_err(|e| {
        syn::Error::new(
            e.span(),
            format!("#[loader] goes on an impl block: {LOADER_SHAPE}"),
        )
    })?;
    let Some((negative, trait_path, _)) = &imp.trait_ else {
        return Err(syn::Error::new_spanned(
            &imp.self_ty,
            format!("#[loader] goes on an impl of the `Loader` trait: {LOADER_SHAPE}"),
        ));
    };
    let mut errors = Vec::new();
    if let Some(bang) = negative {
        errors.push(syn::Error::new_spanned(
            bang,
            "#[loader] cannot go on a negative impl",
        ));
    }
    if trait_path
        .segments
        .last()
        .is_none_or(|segment| segment.ident != "Loader")
    {
        errors.push(syn::Error::new_spanned(
            trait_path,
            format!("#[loader] goes on an impl of the `Loader` trait: {LOADER_SHAPE}"),
        ));
    }
    if !imp.generics.params.is_empty() || imp.generics.where_clause.is_some() {
        errors.push(syn::Error::new_spanned(
            &imp.generics,
            "#[loader] cannot go on a generic impl: the component exports one concrete type",
        ));
    }
    if let Some(token) = &imp.unsafety {
        errors.push(syn::Error::new_spanned(
            token,
            "#[loader] cannot go on an unsafe impl",
        ));
    }
    for item in &imp.items {
        if let ImplItem::Fn(f) = item
            && let Some(token) = &f.sig.asyncness
        {
            errors.push(syn::Error::new_spanned(
                token,
                "loader functions cannot be async",
            ));
        }
    }
    if let Some(combined) = combine(errors) {
        return Err(combined);
    }

    let self_ty = &imp.self_ty;
    let as_loader = quote_spanned! {self_ty.span()=>
        <#self_ty as ::vigil_sdk::loader::Loader>
    };
    let once = once_marker();
    Ok(quote! {
        #imp

        #once

        const _: () = {
            #[doc(hidden)]
            struct __VigilLoader;

            impl ::vigil_sdk::__private::loader::Guest for __VigilLoader {
                fn spawn(
                    ctx: ::vigil_sdk::loader::SpawnContext,
                ) -> ::core::result::Result<::vigil_sdk::loader::Command, ::std::string::String> {
                    #as_loader::spawn(ctx)
                }

                fn decide(
                    event: ::vigil_sdk::loader::Event,
                    history: ::vigil_sdk::loader::History,
                ) -> ::vigil_sdk::loader::Action {
                    #as_loader::decide(event, history)
                }
            }

            ::vigil_sdk::__private::loader::export_loader!(
                __VigilLoader with_types_in ::vigil_sdk::__private::loader
            );
        };
    })
}

/// All errors as one, so the user sees every problem at once.
fn combine(errors: Vec<syn::Error>) -> Option<syn::Error> {
    let mut iter = errors.into_iter();
    let mut first = iter.next()?;
    for error in iter {
        first.combine(error);
    }
    Some(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_error(attr: TokenStream2, item: TokenStream2) -> String {
        match expand_check(attr, item) {
            Ok(tokens) => panic!("expected an error, got {tokens}"),
            Err(e) => e
                .into_iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join(" | "),
        }
    }

    fn loader_error(item: TokenStream2) -> String {
        match expand_loader(TokenStream2::new(), item) {
            Ok(tokens) => panic!("expected an error, got {tokens}"),
            Err(e) => e
                .into_iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join(" | "),
        }
    }

    #[test]
    fn accepts_a_plain_check() {
        let out = expand_check(
            TokenStream2::new(),
            quote! { fn probe(t: Target) -> Outcome { Outcome::Ok } },
        );
        let out = out.map(|t| t.to_string()).unwrap_or_else(|e| e.to_string());
        assert!(out.contains("export_checker"), "{out}");
        assert!(out.contains("probe"), "{out}");
    }

    #[test]
    fn rejects_misuse() {
        let none = TokenStream2::new;
        assert!(
            check_error(
                quote!(x),
                quote!(
                    fn c(t: T) -> O {}
                )
            )
            .contains("no arguments")
        );
        assert!(
            check_error(
                none(),
                quote!(
                    struct S;
                )
            )
            .contains("goes on a function")
        );
        assert!(
            check_error(
                none(),
                quote!(
                    async fn c(t: T) -> O {}
                )
            )
            .contains("async")
        );
        assert!(
            check_error(
                none(),
                quote!(
                    unsafe fn c(t: T) -> O {}
                )
            )
            .contains("unsafe")
        );
        assert!(
            check_error(
                none(),
                quote!(
                    fn c<X>(t: X) -> O {}
                )
            )
            .contains("generic")
        );
        assert!(
            check_error(
                none(),
                quote!(
                    fn c() -> O {}
                )
            )
            .contains("one argument")
        );
        assert!(
            check_error(
                none(),
                quote!(
                    fn c(a: T, b: u32) -> O {}
                )
            )
            .contains("not 2")
        );
        assert!(
            check_error(
                none(),
                quote!(
                    fn c(t: T) {}
                )
            )
            .contains("must return")
        );
        assert!(
            check_error(
                none(),
                quote!(
                    fn c(&self) -> O {}
                )
            )
            .contains("`self`")
        );
        // Every problem at once.
        let both = check_error(
            none(),
            quote!(
                async fn c() {}
            ),
        );
        assert!(
            both.contains("async") && both.contains("one argument") && both.contains("must return"),
            "{both}"
        );
    }

    #[test]
    fn loader_misuse() {
        assert!(loader_error(quote!(impl Policy {})).contains("`Loader` trait"));
        assert!(loader_error(quote!(impl Other for Policy {})).contains("`Loader` trait"));
        assert!(
            loader_error(quote!(
                impl<T> Loader for P<T> {}
            ))
            .contains("generic")
        );
        assert!(
            loader_error(quote!(
                fn spawn() {}
            ))
            .contains("impl block")
        );
        let ok = expand_loader(
            TokenStream2::new(),
            quote!(impl vigil_sdk::loader::Loader for P {}),
        );
        assert!(ok.is_ok());
    }
}
