//! Counting write requests in kube-apiserver's Prometheus metrics.

/// Counter of every request kube-apiserver served, by verb, resource and code.
const REQUEST_COUNTER: &str = "apiserver_request_total";

/// Values of the `verb` label that change stored state.
///
/// kube-apiserver labels a server-side apply (a PATCH with content type
/// `application/apply-patch+yaml`) as `APPLY` and a delete of a whole
/// collection as `DELETECOLLECTION`, so both are listed next to the HTTP
/// methods.
pub const WRITE_VERBS: [&str; 6] = [
    "POST",
    "PUT",
    "PATCH",
    "APPLY",
    "DELETE",
    "DELETECOLLECTION",
];

/// Sums `apiserver_request_total` over the samples whose labels satisfy
/// `matches`. Labels are passed as `(name, value)` pairs.
pub fn sum_requests(metrics: &str, matches: impl Fn(&[(&str, &str)]) -> bool) -> u64 {
    metrics
        .lines()
        .filter_map(parse_request_sample)
        .filter(|(labels, _)| matches(labels))
        .map(|(_, value)| value)
        .sum()
}

/// Sums `apiserver_request_total` over every verb in [`WRITE_VERBS`].
pub fn count_write_requests(metrics: &str) -> u64 {
    sum_requests(metrics, |labels| {
        label(labels, "verb").is_some_and(|verb| WRITE_VERBS.contains(&verb))
    })
}

/// Returns the value of the label `name`.
pub fn label<'a>(labels: &[(&'a str, &'a str)], name: &str) -> Option<&'a str> {
    labels
        .iter()
        .find(|(label_name, _)| *label_name == name)
        .map(|(_, value)| *value)
}

/// Parses one `apiserver_request_total{...} VALUE` line of the Prometheus
/// text format. Label values in this counter never contain `"`, `,` or `\`,
/// so no unescaping is done.
fn parse_request_sample(line: &str) -> Option<(Vec<(&str, &str)>, u64)> {
    let rest = line.strip_prefix(REQUEST_COUNTER)?.strip_prefix('{')?;
    let (label_text, value_text) = rest.rsplit_once('}')?;

    let labels = label_text
        .split(',')
        .filter(|pair| !pair.is_empty())
        .filter_map(|pair| {
            let (name, quoted) = pair.split_once('=')?;
            Some((name, quoted.trim_matches('"')))
        })
        .collect();

    // Counters are printed as integers, or in exponent form once they are
    // large. Either form parses as f64 and is a whole number.
    let value = value_text.split_whitespace().next()?.parse::<f64>().ok()?;
    Some((labels, value as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"# HELP apiserver_request_total [STABLE] Counter of apiserver requests
# TYPE apiserver_request_total counter
apiserver_request_total{code="201",component="apiserver",dry_run="",group="",resource="configmaps",scope="resource",subresource="",verb="POST",version="v1"} 3
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="configmaps",scope="resource",subresource="",verb="GET",version="v1"} 40
apiserver_request_total{code="200",component="apiserver",dry_run="",group="apiextensions.k8s.io",resource="customresourcedefinitions",scope="resource",subresource="",verb="APPLY",version="v1"} 2
apiserver_request_total{code="200",component="apiserver",dry_run="",group="coordination.k8s.io",resource="leases",scope="resource",subresource="",verb="PUT",version="v1"} 1.5e+06
apiserver_request_total_other{verb="POST"} 99
"#;

    #[test]
    fn write_requests_sum_write_verbs() {
        assert_eq!(count_write_requests(SAMPLE), 3 + 2 + 1_500_000);
    }

    #[test]
    fn sum_requests_filters_by_label() {
        let configmap_requests = sum_requests(SAMPLE, |labels| {
            label(labels, "resource") == Some("configmaps")
        });
        assert_eq!(configmap_requests, 43);
    }
}
