//! The HTML matrix in a real browser: the page made from the committed baseline's records (a
//! real run of the default matrix) is loaded in headless Chromium (Debian's, from a tools rootfs
//! the harness provisions in the cache), its DOM is checked after the script ran (a cell per
//! record, every verdict's color, the evidence of a reproduced cell opened by its click
//! handler), and a screenshot is kept in the test's target directory for a person to look at.
//!
//! Where Chromium cannot be provisioned (no Debian archive), the test is ignored with the reason,
//! unless `CRIU_MATRIX_REQUIRE` has `tool=chromium` (CI's), which makes that a failure.

use criu_matrix::plan::Required;
use criu_matrix::record::Verdict;
use criu_matrix::report::browser;
use criu_matrix::stack::Cache;
use libtest_mimic::{Arguments, Completion, Failed, Trial};
use std::path::Path;

fn main() {
    let args = Arguments::from_args();
    criu_matrix::cleanup::install_interrupt_handler();
    let trial = Trial::ignorable_test("page::renders_in_chromium", || {
        let required = Required::from_env().map_err(|e| Failed::from(format!("{e:#}")))?;
        let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
        runtime.block_on(renders_in_chromium(required.requires_tool("chromium")))
    });
    libtest_mimic::run(&args, vec![trial]).exit();
}

async fn renders_in_chromium(required: bool) -> Result<Completion, Failed> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace");
    let baseline = root.join("results/baselines/default.jsonl");
    let records = criu_matrix::record::read_cells_file(&baseline).map_err(|e| Failed::from(format!("{e:#}")))?;
    assert!(records.len() > 10, "the baseline has {} records", records.len());
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("page");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("cells.jsonl"), std::fs::read(&baseline).unwrap()).unwrap();
    criu_matrix::report::write(&out, &records).map_err(|e| Failed::from(format!("{e:#}")))?;
    let page = out.join("matrix.html");

    let cache = Cache::from_env().map_err(|e| Failed::from(format!("{e:#}")))?;
    let browser = match browser::ensure(&cache).await {
        Ok((b, _)) => b,
        Err(e) if !required => {
            return Ok(Completion::ignored_with(format!("chromium could not be provisioned: {e:#}")));
        }
        Err(e) => {
            return Err(Failed::from(format!(
                "chromium could not be provisioned, and CRIU_MATRIX_REQUIRE requires it: {e:#}"
            )))
        }
    };
    eprintln!("{}", browser.version().await.map_err(|e| Failed::from(format!("{e:#}")))?);
    let opened = records
        .iter()
        .find(|r| r.verdict == Verdict::Reproduced)
        .or(records.iter().find(|r| r.verdict != Verdict::Skip))
        .expect("a baseline cell that ran")
        .name
        .clone();
    let png = out.join("matrix.png");
    let rendered = browser
        .render(&page, &format!("cell={opened}"), Some((&png, (1600, 1000))))
        .await
        .map_err(|e| Failed::from(format!("{e:#}")))?;
    let found = browser::check_dom(&rendered.dom, &records, &opened)
        .map_err(|e| Failed::from(format!("{e}\nchromium said:\n{}", rendered.log)))?;
    // A PNG of the asked size, not an empty file.
    let shot = std::fs::read(&png).unwrap();
    assert_eq!(&shot[1..4], b"PNG", "{} is not a PNG", png.display());
    let (w, h) =
        (u32::from_be_bytes(shot[16..20].try_into().unwrap()), u32::from_be_bytes(shot[20..24].try_into().unwrap()));
    assert_eq!((w, h), (1600, 1000), "screenshot size");
    eprintln!(
        "page {} ({} bytes): {found}; screenshot {} ({} bytes)",
        page.display(),
        std::fs::metadata(&page).unwrap().len(),
        png.display(),
        shot.len()
    );
    Ok(Completion::Completed)
}
