//! The page's files, built by `npm run build` in `crates/server/ui` (Vite) and embedded here.
//! `scripts/test` rebuilds them and fails if the committed build differs from its sources.

/// `(path under /ui, content type, bytes)`.
const ASSETS: &[(&str, &str, &[u8])] = &[
    ("", "text/html; charset=utf-8", include_bytes!("../../ui/dist/index.html")),
    ("assets/ui.js", "text/javascript; charset=utf-8", include_bytes!("../../ui/dist/assets/ui.js")),
    ("assets/ui.css", "text/css; charset=utf-8", include_bytes!("../../ui/dist/assets/ui.css")),
];

/// The file served at `path` (the part after `/ui/`, empty for the page itself): its content
/// type and bytes.
pub fn asset(path: &str) -> Option<(&'static str, &'static [u8])> {
    let path = path.trim_start_matches('/');
    let path = if path == "index.html" { "" } else { path };
    ASSETS.iter().find(|(p, _, _)| *p == path).map(|&(_, content_type, bytes)| (content_type, bytes))
}
