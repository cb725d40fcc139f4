//! Snapshots: the file naming, snapshot and HTTP giving identical batches from the same data,
//! recording live responses as a new snapshot, and the error for a missing file.

use std::path::Path;
use std::sync::Arc;

use lakehouse_runtime::ctx::Settings;
use lakehouse_runtime::sources::{
    Fetch, GbfsClient, Mode, OPENDATA_PARIS, OdsClient, OpenData, RecordingFetch, SnapshotFetch,
    Url, snapshot_path,
};

use super::server::{TestServer, replay};
use super::*;

fn path_of(url: &str) -> String {
    let url = Url::parse(url).expect("URL");
    snapshot_path(Path::new("snap"), &url)
        .expect("a path")
        .to_string_lossy()
        .into_owned()
}

#[test]
fn snapshot_files_are_named_by_host_path_and_paging_keys() {
    assert_eq!(
        path_of(
            "https://opendata.paris.fr/api/explore/v2.1/catalog/datasets/velib-emplacement-des-stations/records?select=stationcode%2Cname&order_by=stationcode&timezone=UTC&limit=100&offset=200"
        ),
        "snap/opendata.paris.fr/api/explore/v2.1/catalog/datasets/velib-emplacement-des-stations/records@limit=100&offset=200.json"
    );
    assert_eq!(
        path_of(
            "https://opendata.paris.fr/api/explore/v2.1/catalog/datasets/x/exports/json?where=a%3E1"
        ),
        "snap/opendata.paris.fr/api/explore/v2.1/catalog/datasets/x/exports/json.json"
    );
    assert_eq!(
        path_of("https://download.data.grandlyon.com/files/rdata/jcd_jcdecaux.jcdvelov/gbfs.json"),
        "snap/download.data.grandlyon.com/files/rdata/jcd_jcdecaux.jcdvelov/gbfs.json"
    );
    assert_eq!(
        path_of("http://127.0.0.1:8080/a%20b/feed.json?offset=3"),
        "snap/127.0.0.1_8080/a_20b/feed.json@offset=3.json"
    );
    assert_eq!(
        path_of("https://example.org/"),
        "snap/example.org/index.json"
    );
    // `..` is resolved by URL parsing, so a URL never names a file outside the directory.
    assert_eq!(
        path_of("https://example.org/a/../../../etc/passwd"),
        "snap/example.org/etc/passwd.json"
    );
    // A host of dots parses (`..`, and `%2e%2e` decoded): it would be a folder outside.
    for url in ["http://../x/y", "http://%2e%2e/x/y", "http://./x"] {
        let url = Url::parse(url).expect("URL");
        let error = snapshot_path(Path::new("snap"), &url).expect_err("outside");
        assert!(
            error.to_string().contains("its host is `.` or `..`"),
            "{error}"
        );
    }
}

#[tokio::test]
async fn snapshot_and_http_give_identical_batches_from_the_same_data() {
    let server = TestServer::start(replay(fixtures("edge"), PARIS));
    let (fetch, _) = http(policy());
    let over_http = OdsClient::new(fetch, &ods_base(&server)).expect("client");
    let snapshot = OdsClient::new(
        Arc::new(SnapshotFetch::new(fixtures("edge"))),
        OPENDATA_PARIS,
    )
    .expect("client");

    let live = read_status(&over_http).await.expect("HTTP");
    let recorded = read_status(&snapshot).await.expect("snapshot");

    assert_eq!(live.batches, recorded.batches);
    assert_eq!(live.rows, 10);
    let reasons = |c: &Collected| -> Vec<(String, String)> {
        c.rejects
            .iter()
            .map(|r| (r.reason.clone(), r.raw.clone()))
            .collect()
    };
    assert_eq!(reasons(&live), reasons(&recorded));
    assert!(
        recorded.rejects[0]
            .source
            .starts_with("https://opendata.paris.fr/")
    );
}

#[tokio::test]
async fn gbfs_snapshot_and_http_give_the_same_stations() {
    let feed_path = format!("{LYON_FEEDS}/station_status.json");
    let server = TestServer::start(replay(fixtures("paged"), LYON));
    let (fetch, _) = http(policy());
    let live_url = server.url(&feed_path);
    let recorded_url = format!("https://{LYON}{feed_path}");
    let live = GbfsClient::direct(fetch, [("station_status", live_url.as_str())])
        .expect("client")
        .station_status()
        .await
        .expect("HTTP");
    let recorded = GbfsClient::direct(
        Arc::new(SnapshotFetch::new(fixtures("paged"))),
        [("station_status", recorded_url.as_str())],
    )
    .expect("client")
    .station_status()
    .await
    .expect("snapshot");

    assert_eq!(live.stations, recorded.stations);
    assert_eq!(live.last_updated, recorded.last_updated);
}

#[tokio::test]
async fn recording_writes_a_snapshot_that_replays_identically() {
    let server = TestServer::start(replay(fixtures("paged"), PARIS));
    let dir = tempfile::tempdir().expect("temp dir");
    let (fetch, _) = http(policy());
    let recording = OdsClient::new(
        Arc::new(RecordingFetch::new(fetch, dir.path())),
        &ods_base(&server),
    )
    .expect("client");

    let live = read_status(&recording).await.expect("recorded run");
    let replayed = OdsClient::new(Arc::new(SnapshotFetch::new(dir.path())), &ods_base(&server))
        .expect("client");
    let again = read_status(&replayed).await.expect("replayed run");

    assert_eq!(live.batches, again.batches);
    assert_eq!(server.requests().len(), 3, "the replay made no request");
    let host = server.url("").replace("http://", "").replace(':', "_");
    for offset in [0, 19, 38] {
        let name = format!(
            "api/explore/v2.1/catalog/datasets/{STATUS}/records@limit=20&offset={offset}.json"
        );
        let recorded = std::fs::read(dir.path().join(&host).join(&name)).expect("recorded");
        let original = std::fs::read(fixtures("paged").join(PARIS).join(&name)).expect("fixture");
        assert_eq!(recorded, original, "{name} recorded byte for byte");
    }
}

#[tokio::test]
async fn a_missing_snapshot_file_says_how_to_get_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let fetch = SnapshotFetch::new(dir.path());
    let url = Url::parse(
        "https://opendata.paris.fr/api/explore/v2.1/catalog/datasets/x/records?limit=20&offset=0",
    )
    .expect("URL");

    let error = fetch.get(&url).await.expect_err("no file");

    let text = error.to_string();
    assert!(text.contains("records@limit=20&offset=0.json"), "{text}");
    assert!(
        text.contains("no recorded response for GET https://opendata.paris.fr/"),
        "{text}"
    );
    assert!(text.contains("opendata.mode=record"), "{text}");
    assert!(text.contains("--live"), "{text}");
    assert!(
        !error.is_retryable(),
        "the same at every attempt: {error:?}"
    );

    // Recorded with another page size: said so.
    let page = dir
        .path()
        .join("opendata.paris.fr/api/explore/v2.1/catalog/datasets/x");
    std::fs::create_dir_all(&page).expect("folder");
    std::fs::write(page.join("records@limit=100&offset=0.json"), "{}").expect("file");
    let error = fetch.get(&url).await.expect_err("no file");
    assert!(
        error.to_string().contains(
            "it holds the same URL with other paging, `limit=100&offset=0`: the snapshot was \
             recorded with another page size"
        ),
        "{error}"
    );
}

#[test]
fn settings_choose_the_mode_and_the_directory() {
    let default_dir = fixtures("paged");
    let mut settings = Settings::new();
    let open = OpenData::from_settings(&settings, "velib", &default_dir).expect("defaults");
    assert_eq!(open.mode(), Mode::Snapshot);
    assert_eq!(open.dir(), default_dir);
    assert!(
        open.fetch()
            .expect("snapshot")
            .describe()
            .starts_with("snapshot ")
    );

    settings
        .set("opendata.mode", "live")
        .set("opendata.dir", "/elsewhere");
    let open = OpenData::from_settings(&settings, "velib", &default_dir).expect("live");
    assert_eq!(open.mode(), Mode::Live);
    assert_eq!(open.dir(), Path::new("/elsewhere"));
    assert_eq!(open.fetch().expect("http").describe(), "HTTP");

    settings.set("opendata.mode", "record");
    let open = OpenData::from_settings(&settings, "velib", &default_dir).expect("record");
    assert_eq!(
        open.fetch().expect("recording").describe(),
        "HTTP recording into /elsewhere"
    );

    let mut no_dir = Settings::new();
    no_dir.set("opendata.mode", "record");
    let error = OpenData::from_settings(&no_dir, "velib", &default_dir).expect_err("no dir");
    assert!(
        error.to_string().contains("needs `opendata.dir`"),
        "{error}"
    );
    // Nor into the bundled snapshot, however it is spelled.
    let mut bundled = no_dir.clone();
    bundled.set(
        "opendata.dir",
        format!("{}/../paged", default_dir.display()),
    );
    let error = OpenData::from_settings(&bundled, "velib", &default_dir).expect_err("bundled");
    assert!(!error.is_retryable(), "{error:?}");
    assert!(
        error
            .to_string()
            .contains("over the bundled snapshot, which is generated"),
        "{error}"
    );
    // Nor into a directory inside it.
    bundled.set(
        "opendata.dir",
        default_dir.join("opendata.paris.fr").display().to_string(),
    );
    OpenData::from_settings(&bundled, "velib", &default_dir).expect_err("inside the bundled one");
    // Nor into one still to be made there, however it is spelled.
    for inside in ["new/recording", "new/../other"] {
        bundled.set(
            "opendata.dir",
            default_dir.join(inside).display().to_string(),
        );
        let error = OpenData::from_settings(&bundled, "velib", &default_dir)
            .expect_err("to be made inside")
            .to_string();
        assert!(
            error.contains("over the bundled snapshot"),
            "{inside}: {error}"
        );
    }

    settings.set("opendata.mode", "offline");
    let error = OpenData::from_settings(&settings, "velib", &default_dir).expect_err("bad mode");
    assert!(error.to_string().contains("`opendata.mode`"), "{error}");

    settings.set("opendata.mode", "snapshot");
    let error = OpenData::from_settings(&settings, "velib", &default_dir)
        .expect("snapshot")
        .fetch()
        .expect_err("no such directory");
    assert!(error.to_string().contains("/elsewhere"), "{error}");
    assert!(!error.is_retryable(), "{error:?}");
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[tokio::test]
async fn a_recording_left_unfinished_leaves_no_file() {
    use futures::StreamExt as _;
    let server = TestServer::start(replay(fixtures("paged"), PARIS));
    let dir = tempfile::tempdir().expect("temp dir");
    let (fetch, _) = http(policy());
    let recording = RecordingFetch::new(fetch, dir.path());
    let url = Url::parse(&format!(
        "{}catalog/datasets/{STATUS}/records?limit=20&offset=0",
        ods_base(&server)
    ))
    .expect("URL");
    let mut body = recording.stream(&url).await.expect("stream");
    body.chunks.next().await.expect("a chunk").expect("bytes");
    // The reader stops here (a parse error, a timeout): the stream is dropped unfinished.
    drop(body);
    assert_eq!(files_under(dir.path()), Vec::<std::path::PathBuf>::new());
    // Read to its end, it is recorded under its snapshot name, with no temporary file beside.
    let mut body = recording.stream(&url).await.expect("stream");
    while let Some(chunk) = body.chunks.next().await {
        chunk.expect("bytes");
    }
    drop(body);
    let files = files_under(dir.path());
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(
        files[0]
            .to_string_lossy()
            .ends_with("records@limit=20&offset=0.json"),
        "{files:?}"
    );
}

#[tokio::test]
async fn two_urls_of_one_snapshot_name_are_not_recorded_over_each_other() {
    let server = TestServer::start(replay(fixtures("paged"), PARIS));
    let dir = tempfile::tempdir().expect("temp dir");
    let (fetch, _) = http(policy());
    let recording = RecordingFetch::new(fetch, dir.path());
    let page = |query: &str| {
        Url::parse(&format!(
            "{}catalog/datasets/{STATUS}/records?limit=20&offset=0{query}",
            ods_base(&server)
        ))
        .expect("URL")
    };
    recording.get(&page("")).await.expect("recorded");
    // Recorded again: the same URL.
    recording.get(&page("")).await.expect("recorded again");
    // Another filter, the same file name.
    let error = recording
        .get(&page("&where=numbikesavailable%3E0"))
        .await
        .expect_err("the same file");
    let text = error.to_string();
    assert!(
        text.contains("records@limit=20&offset=0.json, where")
            && text.contains("a replay could not tell them apart"),
        "{text}"
    );
    assert_eq!(files_under(dir.path()).len(), 1);
}

#[test]
fn live_data_is_not_stamped_with_a_distant_run_at() {
    use lakehouse_runtime::prelude::Timestamp;
    let default_dir = std::path::PathBuf::from("/bundled");
    let mut settings = Settings::new();
    let three_days_ago = Timestamp(Timestamp::now().0 - 3 * 86_400_000_000);
    let snapshot = OpenData::from_settings(&settings, "velib", &default_dir).expect("snapshot");
    snapshot
        .check_run_at(three_days_ago, &settings)
        .expect("a snapshot is read at any time");
    settings.set("opendata.mode", "live");
    let live = OpenData::from_settings(&settings, "velib", &default_dir).expect("live");
    live.check_run_at(Timestamp::now(), &settings)
        .expect("a fresh run reads live data");
    let refused = live
        .check_run_at(three_days_ago, &settings)
        .expect_err("now's data would be stamped three days ago");
    let message = refused.to_string();
    assert!(
        message.starts_with("velib: the live services answer with their data of now")
            && message.contains("opendata.allow_other_run_at=true"),
        "{message}"
    );
    assert!(!refused.is_retryable());
    settings.set("opendata.allow_other_run_at", "true");
    live.check_run_at(three_days_ago, &settings)
        .expect("allowed");
}

#[tokio::test]
async fn recording_warns_only_of_a_response_an_earlier_recording_saved() {
    let server = TestServer::start(replay(fixtures("paged"), PARIS));
    let dir = tempfile::tempdir().expect("temp dir");
    let record = || async {
        let (fetch, _) = http(policy());
        let client = OdsClient::new(
            Arc::new(RecordingFetch::new(fetch, dir.path())),
            &ods_base(&server),
        )
        .expect("client");
        let (logs, guard) = crate::common::capture_warnings();
        read_status(&client).await.expect("recorded");
        drop(guard);
        String::from_utf8_lossy(&logs.lock().expect("logs")).into_owned()
    };
    // Two pipelines (or a retry) of one process recording the same URL: nothing earlier.
    assert!(!record().await.contains("replacing a response"));
    let said = record().await;
    assert!(!said.contains("replacing a response"), "{said}");
    // A file an earlier recording saved is said to be replaced.
    let host = server.url("").replace("http://", "").replace(':', "_");
    let name = format!("api/explore/v2.1/catalog/datasets/{STATUS}/records@limit=20&offset=0.json");
    let file = std::fs::File::options()
        .write(true)
        .open(dir.path().join(&host).join(&name))
        .expect("recorded file");
    file.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(3600))
        .expect("an hour old");
    let said = record().await;
    assert!(
        said.contains("replacing a response an earlier recording saved")
            && said.contains("offset=0.json"),
        "{said}"
    );
}

#[tokio::test]
async fn a_snapshot_file_over_the_body_limit_is_refused_as_a_live_body_is() {
    let dir = fixtures("paged");
    let name = format!("api/explore/v2.1/catalog/datasets/{STATUS}/records@limit=20&offset=0.json");
    let size = std::fs::metadata(dir.join(PARIS).join(&name))
        .expect("fixture")
        .len();
    let url = Url::parse(&format!(
        "https://{PARIS}/api/explore/v2.1/catalog/datasets/{STATUS}/records?limit=20&offset=0"
    ))
    .expect("URL");
    let mut settings = Settings::new();
    settings.set("opendata.velib.http.max_body", (size - 1).to_string());
    let open = OpenData::from_settings(&settings, "velib", &dir).expect("snapshot");

    let error = open
        .fetch()
        .expect("snapshot")
        .get(&url)
        .await
        .expect_err("over the limit");

    let text = error.to_string();
    assert!(
        text.contains(&format!(
            "the body is {size} bytes, more than the {} bytes allowed: raise \
             `opendata.velib.http.max_body` if the response is expected to be this large",
            size - 1
        )) && text.contains("records@limit=20&offset=0.json"),
        "{text}"
    );
    assert!(!error.is_retryable(), "{error:?}");
    // At the limit, read.
    settings.set("opendata.velib.http.max_body", size.to_string());
    let open = OpenData::from_settings(&settings, "velib", &dir).expect("snapshot");
    let body = open
        .fetch()
        .expect("snapshot")
        .get(&url)
        .await
        .expect("read");
    assert_eq!(body.bytes.len() as u64, size);
}
