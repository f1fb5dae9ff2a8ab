//! The orders service's business metrics (beyond the plumbing's, in `platform::metrics::names`).

pub const ORDERS_CREATED: &str = "OrdersCreated";
pub const ORDERS_REFUSED: &str = "OrdersRefused";
/// Units of a cancelled order that went back to no product (it was deleted from the catalogue).
pub const STOCK_NOT_RESTORED: &str = "StockNotRestored";

/// PENDING orders cancelled because their payment was not authorized by the deadline.
pub const ORDERS_EXPIRED: &str = "OrdersExpired";

/// PENDING orders past their deadline that the expiry could not cancel this run (alarmed: an
/// order left PENDING holds its stock).
pub const EXPIRY_FAILURES: &str = "ExpiryFailures";

/// Every business metric of this service.
pub const ALL: [&str; 5] = [
    ORDERS_CREATED,
    ORDERS_REFUSED,
    STOCK_NOT_RESTORED,
    ORDERS_EXPIRED,
    EXPIRY_FAILURES,
];

#[cfg(test)]
mod tests {
    #[test]
    fn the_dashboard_in_template_yaml_shows_every_metric() {
        let template = include_str!("../../../template.yaml");
        let dashboard = &template[template.find("DashboardBody").expect("a dashboard")..];
        for name in super::ALL
            .iter()
            .chain(platform::metrics::names::ALL.iter())
        {
            // As a widget's metric ("Name"), or inside a SEARCH expression (\"Name\").
            let shown = dashboard.contains(&format!("\"{name}\""))
                || dashboard.contains(&format!("\\\"{name}\\\""));
            assert!(shown, "{name} is not on the dashboard");
        }
    }
}
