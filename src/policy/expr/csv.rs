//! BuildKit CSV values (`--output type=image,name=...`) as CEL: images
//! rewritten, `registry.insecure=true` dropped once all are on HTTPS.

use super::{bind, Exprs};

impl Exprs<'_> {
    /// The fields of CSV value `x` (no quotes, so split on commas).
    fn csv_fields(x: &str) -> String {
        format!("{x}.split(',')")
    }

    /// The images of a CSV field `xq` (`name=`/`ref=`), or `''`.
    fn csv_image_key(xq: &str) -> String {
        format!(
            "({xq}.contains('=') && {xq}.substring(0, {xq}.indexOf('=')).lowerAscii() in ['name', 'ref'])"
        )
    }

    /// `[new text, 't' if every image ends on a rewrite target]` of CSV
    /// value `x`: its images rewritten, and `registry.insecure=true` dropped
    /// once every image is on the HTTPS registry.
    pub(super) fn csv_info(&self, x: &str) -> String {
        let is_image = Self::csv_image_key("xq");
        let infos = format!(
            "xqs.map(xq, {is_image} ? {} : ['', ''])",
            self.image_info("xq.substring(xq.indexOf('=') + 1)")
        );
        let insecure = "xqs.transformList(xj, xq, xq.contains('=') && xq.substring(0, xq.indexOf('=')).lowerAscii() == 'registry.insecure' && xq.substring(xq.indexOf('=') + 1) == 'true' ? 'I' : '.').join('').lastIndexOf('I')";
        let all_on_target = format!("xqs.all(xj, xq, !{is_image} || xqi[xj][1] == 't')");
        let result = "[xqs.transformList(xj, xq, !(xqhttps && xj == xins), xqi[xj][0] != '' ? xq.substring(0, xq.indexOf('=') + 1) + xqi[xj][0] : xq).join(','), xqhttps ? 't' : '']";
        bind(
            "xqs",
            &Self::csv_fields(x),
            &bind(
                "xqi",
                &infos,
                &bind(
                    "xqhttps",
                    &format!("xqs.exists(xq, {is_image}) && {all_on_target}"),
                    &bind("xins", insecure, result),
                ),
            ),
        )
    }
}

/// CSV the policy reads as the webhook does: no quotes, no line breaks.
pub(super) fn csv_readable(x: &str) -> String {
    format!("!({x}.contains('\"') || {x}.contains('\\n') || {x}.contains('\\r'))")
}
