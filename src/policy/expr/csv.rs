//! BuildKit CSV values (`--output type=image,"name=a,b"`) as CEL, read as
//! the engine's `csv` reads them (one record of Go's encoding/csv): images
//! rewritten, `registry.insecure=true` dropped once all are on HTTPS,
//! every other field kept byte for byte, quotes included.
//!
//! The text split on `"` alternates outside and inside quotes, `""` being
//! an empty outside part between two inside ones. Commas inside quotes
//! become line breaks (which a readable value has none of), so that a split
//! on commas gives each field's raw text.

use super::{bind, Exprs};

/// Quotes where Go's reader takes them: an outside part (`xs` at `xk` of
/// the parts `xqp`) is empty (a doubled quote, or the text's start or end),
/// or starts with the comma after a closing quote and ends with the comma
/// before an opening one.
const QUOTES_READABLE: &str = "size(xqp) % 2 == 1 && xqp.all(xk, xs, xk % 2 == 1 || xs == '' || \
     ((xk == 0 || xs.startsWith(',')) && (xk == size(xqp) - 1 || xs.endsWith(','))))";

/// Each field's raw text, commas inside quotes as line breaks.
const RAW_FIELDS: &str =
    "xqp.transformList(xk, xs, xk % 2 == 1 ? xs.replace(',', '\\n') : xs).join('\"').split(',')";

/// The value of raw field `xq`: unquoted, doubled quotes undone.
const FIELD_VALUE: &str = "(xq.startsWith('\"') ? xq.substring(1, size(xq) - 1).replace('\"\"', '\"') : xq).replace('\\n', ',')";

/// Field value `xv` is `key=names` with an image key (`name`, `ref`).
const IMAGE_KEY: &str =
    "(xv.contains('=') && xv.substring(0, xv.indexOf('=')).lowerAscii() in ['name', 'ref'])";

/// Field value `xv` is `registry.insecure=true`.
const INSECURE: &str = "(xv.contains('=') && xv.substring(0, xv.indexOf('=')).lowerAscii() == 'registry.insecure' && xv.substring(xv.indexOf('=') + 1) == 'true')";

/// A field's new value `xnv` quoted as its raw text `xq` was, or where a
/// comma or quote needs it.
const ENCODED: &str = "(xq.startsWith('\"') || xnv.contains(',') || xnv.contains('\"') ? '\"' + xnv.replace('\"', '\"\"') + '\"' : xnv)";

impl Exprs<'_> {
    /// `[new text, 't' if every image ends on a rewrite target]` of CSV
    /// value `x`, with no line breaks: its images rewritten, and
    /// `registry.insecure=true` dropped once every image is on the HTTPS
    /// registry. A value Go could not read is left as it is.
    pub(super) fn csv_info(&self, x: &str) -> String {
        // Per field: `[]` for a field without images, else per name its
        // `image_info`.
        let infos = format!(
            "xqv.map(xv, {IMAGE_KEY} ? xv.substring(xv.indexOf('=') + 1).split(',').map(xqn, {}) : [])",
            self.image_info("xqn")
        );
        let new_field = bind(
            "xv",
            "xqv[xqj]",
            &format!(
                "xqi[xqj].exists(xqf, xqf[0] != '') ? {} : xq.replace('\\n', ',')",
                bind(
                    "xnv",
                    "xv.substring(0, xv.indexOf('=') + 1) + xv.substring(xv.indexOf('=') + 1).split(',')\
                     .transformList(xm, xqn, xqi[xqj][xm][0] != '' ? xqi[xqj][xm][0] : xqn).join(',')",
                    ENCODED
                )
            ),
        );
        let insecure =
            format!("xqv.transformList(xqj, xv, {INSECURE} ? 'I' : '.').join('').lastIndexOf('I')");
        let https = "xqi.exists(xqf, size(xqf) > 0) && xqi.all(xqf, xqf.all(xqn, xqn[1] == 't'))";
        let result = format!(
            "[xqr.transformList(xqj, xq, !(xqhttps && xqj == xins), {new_field}).join(','), xqhttps ? 't' : '']"
        );
        let fields = bind(
            "xqr",
            RAW_FIELDS,
            &bind(
                "xqv",
                &format!("xqr.map(xq, {FIELD_VALUE})"),
                &bind(
                    "xqi",
                    &infos,
                    &bind("xqhttps", https, &bind("xins", &insecure, &result)),
                ),
            ),
        );
        bind(
            "xqp",
            &format!("{x}.split('\"')"),
            &format!("{QUOTES_READABLE} ? {fields} : [string({x}), '']"),
        )
    }
}

/// CSV without line breaks, which Go's reader would take as a second record.
pub(super) fn csv_readable(x: &str) -> String {
    format!("!({x}.contains('\\n') || {x}.contains('\\r'))")
}
