//! The customer dimension: ERP customers enriched with their CRM contact.

use lakehouse_runtime::prelude::*;

use crate::ingestion::crm::{SilverCrmContacts, silver_crm_contacts};
use crate::ingestion::erp::{SilverErpSales, silver_erp_sales_transactions};

/// Customers, with the history of their attributes.
#[derive(Table)]
#[table(
    schema = "gold",
    name = "dim_customer",
    key(customer_key),
    mode = scd2,
    quality = blocking,
    change_columns(customer_id, customer_name, contact_id, first_name, last_name, email, phone,
                   address, city, state, zip_code, country, job_title)
)]
pub struct DimCustomer {
    /// Surrogate key: SHA-256 of `customer_id`
    pub customer_key: String,
    /// Unique ID of the customer
    pub customer_id: String,
    /// Name of the customer, from their latest sale
    pub customer_name: Option<String>,
    /// The customer's CRM contact
    pub contact_id: Option<String>,
    /// First name of the contact
    pub first_name: Option<String>,
    /// Last name of the contact
    pub last_name: Option<String>,
    /// Email of the contact
    pub email: Option<String>,
    /// Phone number of the contact
    pub phone: Option<String>,
    /// Address of the contact
    pub address: Option<String>,
    /// City of the contact
    pub city: Option<String>,
    /// State of the contact
    pub state: Option<String>,
    /// Zip code of the contact
    pub zip_code: Option<String>,
    /// Country of the contact
    pub country: Option<String>,
    /// Job title of the contact
    pub job_title: Option<String>,
    /// Logical time of the run that wrote the row
    pub run_at: Timestamp,
}

/// One row per customer seen in the sales, with the name of their most recently ingested sale and their
/// CRM contact (none when the CRM has no contact for them).
#[pipeline(depends_on = [silver_erp_sales_transactions, silver_crm_contacts])]
pub async fn dim_customer(
    sales: Frame<SilverErpSales>,
    contacts: Frame<SilverCrmContacts>,
    cx: &Ctx,
) -> Result<Frame<DimCustomer>> {
    use SilverCrmContacts as c;
    use SilverErpSales as s;
    let customers = sales.filter(s::customer_id.is_not_null())?.latest_by(
        [s::customer_id.expr()],
        [s::run_at.expr(), s::order_line.expr(), s::order_id.expr()],
    )?;
    // One contact per customer: the most recently updated.
    let contacts = contacts.filter(c::customer_id.is_not_null())?.latest_by(
        [c::customer_id.expr()],
        [c::updated_at.expr(), c::contact_id.expr()],
    )?;
    customers
        .join(
            contacts,
            JoinType::Left,
            [on(s::customer_id, c::customer_id)],
        )?
        .select_into(DimCustomerSelect {
            customer_key: surrogate_key([s::customer_id]),
            customer_id: s::customer_id.assume_not_null(),
            customer_name: s::customer_name,
            contact_id: c::contact_id,
            first_name: c::first_name,
            last_name: c::last_name,
            email: c::email,
            phone: c::phone,
            address: c::address,
            city: c::city,
            state: c::state,
            zip_code: c::zip_code,
            country: c::country,
            job_title: c::job_title,
            run_at: cx.run_at(),
        })
}
