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

/// The statement that applies `key = value` to `spec`: a call of the spec method of that name,
/// the one implementation every front-end shares. The call carries the key's span, so an
/// unknown key fails to compile right at the key ("no method named `colour` found").
fn apply_key(key: &Ident, value: &Expr) -> Tokens {
    // A closure is evaluated on the model, so specs may depend on its config.
    let v = match value {
        Expr::Closure(c) => quote_spanned! {c.span()=> ::tensile::inline::with_model(self, #c) },
        other => quote! { #other },
    };
    quote_spanned! {key.span()=> spec.#key(#v); }
}

/// Parses `key = value, …` into the statements that build one test.
fn spec_body(args: &Punctuated<Meta, Token![,]>, field: &Ident, ty: &syn::Type, prefix: &Option<String>) -> syn::Result<Tokens> {
    let mut stmts = Vec::new();
    for meta in args {
        let Meta::NameValue(nv) = meta else {
            return Err(syn::Error::new(meta.span(), "expected `key = value`"));
        };
        let key = nv.path.get_ident().ok_or_else(|| syn::Error::new(nv.path.span(), "expected a key such as `input_shape`"))?;
        stmts.push(apply_key(key, &nv.value));
    }
    let prefix = match prefix {
        Some(p) => quote! { ::core::option::Option::Some(#p) },
        None => quote! { ::core::option::Option::None },
    };
    let default_name = field.to_string();
    // The type check is spanned on the field's type: a field that is not a testable block
    // fails to compile right there.
    let module = quote_spanned! {ty.span()=> ::tensile::inline::test_module::<#ty>(&self.#field) };
    Ok(quote! {{
        let mut spec = ::tensile::Spec::default();
        spec.name(#default_name);
        #(#stmts)*
        tests.push(::tensile::ModuleTest::new(#prefix, #default_name, #module, spec));
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
