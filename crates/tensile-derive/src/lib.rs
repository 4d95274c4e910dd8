//! Procedural macros for tensile: `#[derive(Testable)]` and `#[model_tests("name")]`.
//!
//! Both only generate code that builds [`tensile::ModuleTest`] values — the spec IR every
//! front-end lowers to. They are re-exported by `tensile`; use them from there.
#![deny(missing_docs)]

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as Tokens};
use quote::{quote, quote_spanned};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Expr, Fields, Ident, LitStr, Meta, Token};

/// The keys a spec may set, each with the code that applies it to `spec`.
fn apply_key(key: &Ident, value: &Expr) -> syn::Result<Tokens> {
    // A closure is evaluated on the model, so specs may depend on its config.
    let v = match value {
        Expr::Closure(c) => quote_spanned! {c.span()=> ::tensile::inline::with_model(self, #c) },
        other => quote! { #other },
    };
    Ok(match key.to_string().as_str() {
        "input_shape" => quote! { spec.input_shape = Some(::tensile::inline::IntoDims::into_dims(#v)); },
        "tolerance" => quote! { spec.tolerance = Some(::core::convert::Into::into(#v)); },
        "latency_ms" => quote! { spec.targets.latency_ms = Some(::tensile::spec::Target::Fixed(#v)); },
        "memory_mb" => quote! { spec.targets.memory_mb = Some(::tensile::spec::Target::Fixed(#v)); },
        "margin" => quote! { spec.targets.margin = Some(#v); },
        "gpu_class" => quote! { spec.targets.gpu_class = #v; },
        "seq_lengths" => quote! {
            let expect = spec.sweep.as_ref().map_or(::tensile::Scaling::Linear, |s| s.expect);
            spec.sweep = Some(::tensile::spec::Sweep { seq_lengths: ::std::iter::IntoIterator::into_iter(#v).collect(), expect });
            if !spec.checks.contains(&::tensile::Check::Scaling) { spec.checks.push(::tensile::Check::Scaling); }
        },
        "expect_scaling" => quote! {
            match &mut spec.sweep {
                Some(s) => s.expect = #v,
                None => spec.sweep = Some(::tensile::spec::Sweep { seq_lengths: Vec::new(), expect: #v }),
            }
        },
        "checks" => quote! { spec.checks = ::std::iter::IntoIterator::into_iter(#v).collect(); },
        "dtypes" => quote! { spec.dtypes = ::std::iter::IntoIterator::into_iter(#v).collect(); },
        "seed" => quote! { spec.seed = #v; },
        "name" => Tokens::new(),
        other => {
            return Err(syn::Error::new(
                key.span(),
                format!("unknown tensile spec key `{other}` (expected input_shape, tolerance, latency_ms, memory_mb, margin, gpu_class, seq_lengths, expect_scaling, checks, dtypes, seed, name)"),
            ))
        }
    })
}

/// Parses `key = value, …` into the statements that build one test.
fn spec_body(args: &Punctuated<Meta, Token![,]>, field: &Ident, ty: &syn::Type, prefix: &Option<String>) -> syn::Result<Tokens> {
    let mut name = field.to_string();
    let mut stmts = Vec::new();
    for meta in args {
        let Meta::NameValue(nv) = meta else {
            return Err(syn::Error::new(meta.span(), "expected `key = value`"));
        };
        let key = nv.path.get_ident().ok_or_else(|| syn::Error::new(nv.path.span(), "expected a key such as `input_shape`"))?;
        if key == "name" {
            match &nv.value {
                Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(s), .. }) => name = s.value(),
                other => return Err(syn::Error::new(other.span(), "`name` takes a string literal")),
            }
        }
        stmts.push(apply_key(key, &nv.value)?);
    }
    let full = match prefix {
        Some(p) => format!("{p}::{name}"),
        None => name,
    };
    // The type check is spanned on the field's type: a field that is not a testable block
    // fails to compile right there.
    let module = quote_spanned! {ty.span()=> ::tensile::inline::test_module::<#ty>(&self.#field) };
    Ok(quote! {{
        let mut spec = ::tensile::Spec::default();
        #(#stmts)*
        tests.push(::tensile::ModuleTest { name: ::std::string::String::from(#full), module: #module, spec });
    }})
}

/// Implements `tensile::inline::TestableModel` from `#[tensile(...)]` attributes.
///
/// On fields: `#[tensile(input_shape = (1, 2048, 4096), tolerance = 1e-3, latency_ms = 5.0)]`.
/// On the struct: `#[tensile(name = "llama3")]` prefixes test names, and
/// `#[tensile(attention(input_shape = ...))]` declares a spec for the field `attention` (a
/// name that is not a field is a compile error). Values may be closures of the model:
/// `input_shape = |m| (1, 2048, m.config.hidden_size)`.
#[proc_macro_derive(Testable, attributes(tensile))]
pub fn derive_testable(input: TokenStream) -> TokenStream {
    match derive(syn::parse_macro_input!(input as DeriveInput)) {
        Ok(t) => t.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

fn derive(input: DeriveInput) -> syn::Result<Tokens> {
    let Data::Struct(data) = &input.data else {
        return Err(syn::Error::new(input.ident.span(), "#[derive(Testable)] works on structs with named fields"));
    };
    let Fields::Named(fields) = &data.fields else {
        return Err(syn::Error::new(input.ident.span(), "#[derive(Testable)] works on structs with named fields"));
    };
    let mut prefix = None;
    let mut bodies = Vec::new();
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("tensile")) {
        let metas = attr.parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated)?;
        for meta in metas {
            match meta {
                Meta::NameValue(nv) if nv.path.is_ident("name") => match &nv.value {
                    Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(s), .. }) => prefix = Some(s.value()),
                    other => return Err(syn::Error::new(other.span(), "`name` takes a string literal")),
                },
                Meta::List(list) => {
                    let ident = list.path.get_ident().ok_or_else(|| syn::Error::new(list.path.span(), "expected a field name"))?;
                    let field = fields.named.iter().find(|f| f.ident.as_ref() == Some(ident)).ok_or_else(|| {
                        syn::Error::new(ident.span(), format!("no field `{ident}` in `{}`: a tensile spec must name an existing field", input.ident))
                    })?;
                    let args = Punctuated::<Meta, Token![,]>::parse_terminated.parse2(list.tokens.clone())?;
                    bodies.push((ident.clone(), field.ty.clone(), args));
                }
                other => return Err(syn::Error::new(other.span(), "expected `name = \"…\"` or `field(key = value, …)`")),
            }
        }
    }
    for f in &fields.named {
        for attr in f.attrs.iter().filter(|a| a.path().is_ident("tensile")) {
            let args = attr.parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated)?;
            bodies.push((f.ident.clone().expect("named field"), f.ty.clone(), args));
        }
    }
    let tests = bodies.iter().map(|(field, ty, args)| spec_body(args, field, ty, &prefix)).collect::<syn::Result<Vec<_>>>()?;
    let ident = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    Ok(quote! {
        impl #impl_generics ::tensile::inline::TestableModel for #ident #ty_generics #where_clause {
            fn module_tests(&self) -> ::std::vec::Vec<::tensile::ModuleTest> {
                let mut tests = ::std::vec::Vec::new();
                #(#tests)*
                tests
            }
        }
    })
}

/// Registers a function returning `Vec<tensile::ModuleTest>` under a model name, collected at
/// link time; `tensile::registry::discover()` lists every registration.
///
/// ```ignore
/// #[tensile::model_tests("llama3_8b")]
/// fn llama3_tests() -> Vec<tensile::ModuleTest> { … }
/// ```
#[proc_macro_attribute]
pub fn model_tests(attr: TokenStream, item: TokenStream) -> TokenStream {
    let name = match syn::parse::<LitStr>(attr) {
        Ok(n) => n,
        Err(_) => return syn::Error::new(Span::call_site(), "expected a model name: #[model_tests(\"llama3_8b\")]").to_compile_error().into(),
    };
    let func = syn::parse_macro_input!(item as syn::ItemFn);
    let ident = &func.sig.ident;
    quote! {
        #func
        ::tensile::inventory::submit! {
            ::tensile::registry::Registration { model: #name, tests: #ident, file: ::core::file!() }
        }
    }
    .into()
}
