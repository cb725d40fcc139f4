//! "Did you mean" suggestions.

/// The candidate closest to `name` by edit distance, if it is close enough to be a typo.
pub(crate) fn closest<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        // Case differences count as nothing: `DIM_PRODUCT` means `dim_product`.
        .map(|c| {
            (
                strsim::levenshtein(&name.to_lowercase(), &c.to_lowercase()),
                c,
            )
        })
        .filter(|(d, c)| *d <= (c.len().max(name.len()) / 3).max(1))
        .min_by_key(|(d, c)| (*d, *c))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_typos_only() {
        let names = ["erp_sales", "crm_contacts", "dim_date"];
        assert_eq!(closest("erp_sale", names), Some("erp_sales"));
        assert_eq!(closest("dim_dat", names), Some("dim_date"));
        assert_eq!(closest("velib", names), None);
        assert_eq!(closest("DIM_DATE", names), Some("dim_date"));
    }
}
