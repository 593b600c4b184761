//! Reading every page of a list action: by page number, by offset, by the cursor a page
//! gives, or by the `Link` header — bounded in requests and in bytes.

use flowbot_core::template::Scope;
use flowbot_core::ActionError;
use serde_json::{json, Value};

use super::format::{ActionDef, PageKind, Paginate};
use super::FileApp;

/// All pages together may hold at most this much (each page is bounded on its own too).
const MAX_TOTAL: usize = 64 << 20;

/// What one page's request adds: query parameters, or the whole URL the app gave.
#[derive(Debug, Default)]
pub(super) struct PageRequest {
    pub query: Vec<(String, String)>,
    pub url: Option<reqwest::Url>,
}

impl FileApp {
    pub(super) async fn paged(
        &self,
        a: &ActionDef,
        p: &Paginate,
        scope: &Scope,
        token: Option<(String, String)>,
    ) -> Result<Value, ActionError> {
        let size = |req: &mut PageRequest| {
            if let (Some(name), Some(n)) = (&p.size_param, p.size) {
                req.query.push((name.clone(), n.to_string()));
            }
        };
        let param = p.param.clone().unwrap_or_default();
        let mut all: Vec<Value> = Vec::new();
        let mut bytes = 0usize;
        let mut req = PageRequest::default();
        match p.kind {
            PageKind::Page => req.query.push((param.clone(), p.start.to_string())),
            PageKind::Offset => req.query.push((param.clone(), "0".into())),
            PageKind::Cursor | PageKind::Link => {}
        }
        size(&mut req);
        let (mut page, mut offset) = (p.start, 0u64);
        let mut last = Value::Null;
        let mut truncated = false;
        for n in 0..p.max_pages {
            let (response, read) = self.exchange(a, scope, token.clone(), &req).await?;
            bytes += read;
            if bytes > MAX_TOTAL {
                return Err(ActionError::fatal(format!(
                    "{}: the pages together are larger than {} MiB; ask for fewer (filters)",
                    a.id,
                    MAX_TOTAL >> 20
                )));
            }
            let mut s = Scope::new();
            s.insert("response".into(), response.clone());
            let items = match self.render("the page's items", &json!(p.items), &s)? {
                Value::Array(items) => items,
                Value::Null => Vec::new(),
                other => {
                    return Err(ActionError::fatal(format!(
                        "{}: `paginate.items` gave {}, not a list",
                        a.id,
                        other.to_string().chars().take(100).collect::<String>()
                    )))
                }
            };
            let got = items.len() as u64;
            all.extend(items);
            let full = p.size.is_none_or(|want| got >= want);
            let mut next = PageRequest::default();
            let more = match p.kind {
                PageKind::Page => {
                    page += 1;
                    next.query.push((param.clone(), page.to_string()));
                    got > 0 && full
                }
                PageKind::Offset => {
                    offset += got;
                    next.query.push((param.clone(), offset.to_string()));
                    got > 0 && full
                }
                PageKind::Cursor => {
                    let t = p.next.as_deref().unwrap_or_default();
                    let c = self
                        .render_text("the next cursor", t, &s)
                        .unwrap_or_default();
                    let more = !c.is_empty();
                    if c.starts_with("http://") || c.starts_with("https://") {
                        next.url = Some(self.on_base("the next page", c, scope)?);
                    } else if more {
                        next.query.push((param.clone(), c));
                    }
                    more
                }
                PageKind::Link => match next_link(&response["headers"]["link"]) {
                    Some(u) => {
                        next.url = Some(self.on_base("the next page", u, scope)?);
                        true
                    }
                    None => false,
                },
            };
            last = response;
            if !more {
                break;
            }
            if n + 1 == p.max_pages {
                truncated = true;
                break;
            }
            if next.url.is_none() {
                size(&mut next);
            }
            req = next;
        }
        let mut s = scope.clone();
        s.insert("items".into(), Value::Array(all));
        s.insert("response".into(), last);
        s.insert("truncated".into(), json!(truncated));
        match &a.output {
            Some(t) => self.render("the output", t, &s),
            None => Ok(json!({ "items": s["items"], "truncated": truncated })),
        }
    }
}

/// The `rel="next"` target of a `Link` header (RFC 8288).
fn next_link(header: &Value) -> Option<String> {
    header.as_str()?.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let rel_next = params.split(';').any(|p| {
            let p = p.trim().replace(' ', "");
            p == "rel=\"next\"" || p == "rel=next"
        });
        rel_next.then(|| {
            target
                .trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string()
        })
    })
}
