//! CRM contacts: a simulated CRM extract of the customers' contacts, delivered whole each run.

use lakehouse_runtime::prelude::*;
use serde::Serialize;

/// Contacts as the CRM delivers them, one extract per run.
#[derive(Table, Serialize)]
#[table(schema = "bronze", name = "crm_contacts")]
pub struct BronzeCrmContacts {
    /// Unique ID of the contact
    pub contact_id: String,
    /// Unique ID of the customer
    pub customer_id: Option<String>,
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
    /// When the contact was created in the CRM
    pub created_at: Option<Timestamp>,
    /// When the contact was last updated in the CRM
    pub updated_at: Option<Timestamp>,
    /// Logical time of the run that ingested the row
    pub run_at: Timestamp,
}

/// The current contacts: the latest extract; contacts missing from it are deleted.
#[derive(Table)]
#[table(schema = "silver", name = "crm_contacts", key(contact_id), mode = merge)]
pub struct SilverCrmContacts {
    /// Unique ID of the contact
    pub contact_id: String,
    /// Unique ID of the customer
    pub customer_id: Option<String>,
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
    /// When the contact was created in the CRM
    pub created_at: Option<Timestamp>,
    /// When the contact was last updated in the CRM
    pub updated_at: Option<Timestamp>,
    /// Logical time of the run that ingested the row
    pub run_at: Timestamp,
}

const CITIES: [(&str, &str); 3] = [
    ("New York", "NY"),
    ("Chicago", "IL"),
    ("San Francisco", "CA"),
];

/// The CRM extract of run number `sequence`: ten contacts, one per customer `CUST1`..`CUST10`.
/// Contact 9 is absent from even runs (a deletion at the source) and contact 0 changes job title
/// with the run's parity, so every run exercises deletes and attribute changes.
pub fn generate_contacts(sequence: i64, run_at: Timestamp) -> Vec<BronzeCrmContacts> {
    (0..10)
        .filter(|i| !(*i == 9 && sequence % 2 == 0))
        .map(|i| {
            let (city, state) = CITIES[i % 3];
            let job_title = match (i, sequence % 2) {
                (0, 0) => "Director",
                _ if i % 2 == 0 => "Manager",
                _ => "Sales Rep",
            };
            BronzeCrmContacts {
                contact_id: i.to_string(),
                customer_id: Some(format!("CUST{}", i + 1)),
                first_name: Some(format!("FirstName{i}")),
                last_name: Some(format!("LastName{i}")),
                email: Some(format!("contact{i}@example.com")),
                phone: Some(format!("+1-555-01{:02}", i + 1)),
                address: Some(format!("Address {i}")),
                city: Some(city.to_owned()),
                state: Some(state.to_owned()),
                zip_code: Some(format!("100{:02}", i + 1)),
                country: Some("USA".to_owned()),
                job_title: Some(job_title.to_owned()),
                created_at: Some(Timestamp(0)),
                updated_at: Some(run_at),
                run_at,
            }
        })
        .collect()
}

/// Ingests the CRM extract of this run.
#[pipeline(tags = ["crm"])]
pub async fn crm_contacts(cx: &Ctx) -> Result<Frame<BronzeCrmContacts>> {
    cx.frame_from_rows(&generate_contacts(cx.run().sequence, cx.run_at()))
}

/// Applies the new extract: upserts its contacts and deletes those it no longer has.
#[pipeline(depends_on = [crm_contacts], tags = ["crm"], full_snapshot)]
pub async fn silver_crm_contacts(
    extract: Changes<BronzeCrmContacts>,
) -> Result<Frame<SilverCrmContacts>> {
    use BronzeCrmContacts as b;
    // The newest extract only: after a failed run the changes hold several, and a contact the
    // newest one lacks is deleted, not kept from an older one.
    extract
        .latest_only(b::run_at)?
        .select_into(SilverCrmContactsSelect {
            contact_id: b::contact_id,
            customer_id: b::customer_id,
            first_name: b::first_name,
            last_name: b::last_name,
            email: b::email,
            phone: b::phone,
            address: b::address,
            city: b::city,
            state: b::state,
            zip_code: b::zip_code,
            country: b::country,
            job_title: b::job_title,
            created_at: b::created_at,
            updated_at: b::updated_at,
            run_at: b::run_at,
        })
}
