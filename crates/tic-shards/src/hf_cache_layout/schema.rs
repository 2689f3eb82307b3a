//! The sets' columns, their `datasets` features and Arrow schema (per [`CacheLayout`]), the
//! rows tic-synth writes, and their record batches.

use super::{columns, CacheLayout, HfSet, HF_METADATA_KEY, SPLIT};
use anyhow::{bail, Context, Result};
use arrow_array::builder::{
    BinaryBuilder, Int64Builder, ListBuilder, StringBuilder, StructBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Fields, Schema};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// A `datasets` feature, as the sets use them.
#[derive(Debug, Clone, Copy)]
enum Feature {
    /// `Value("string")`.
    Str,
    /// `Value("int64")`.
    Int,
    /// `Image()`.
    Image,
    /// A list of `Value("string")` (`Sequence` / `List`).
    Strings,
    /// A list of `Image()`.
    Images,
}

/// The sets' columns and features, in column order (the real sets').
fn features(set: HfSet) -> Vec<(&'static str, Feature)> {
    use columns::*;
    if set.is_retrieval() {
        vec![
            (IMAGE, Feature::Image),
            (CAPTION, Feature::Strings),
            (SENTIDS, Feature::Strings),
            (SPLIT, Feature::Str),
            (IMG_ID, Feature::Str),
            (FILENAME, Feature::Str),
        ]
    } else {
        vec![
            (CANDIDATES, Feature::Strings),
            (CUE, Feature::Str),
            (ASSOCIATIONS, Feature::Strings),
            (CANDIDATE_IMAGES, Feature::Images),
            (NUM_ASSOCIATIONS, Feature::Int),
            (NUM_CANDIDATES, Feature::Int),
            (ID, Feature::Int),
        ]
    }
}

/// `Image()`'s Arrow type: `struct<bytes: binary, path: string>`.
pub fn image_fields() -> Fields {
    Fields::from(vec![
        Field::new(columns::IMAGE_BYTES, DataType::Binary, true),
        Field::new(columns::IMAGE_PATH, DataType::Utf8, true),
    ])
}

fn arrow_type(f: Feature, layout: CacheLayout) -> DataType {
    let list = |t: DataType| DataType::List(Arc::new(Field::new(layout.list_item(), t, true)));
    match f {
        Feature::Str => DataType::Utf8,
        Feature::Int => DataType::Int64,
        Feature::Image => DataType::Struct(image_fields()),
        Feature::Strings => list(DataType::Utf8),
        Feature::Images => list(DataType::Struct(image_fields())),
    }
}

fn feature_json(f: Feature, layout: CacheLayout) -> Value {
    let value = |t: &str| json!({"dtype": t, "_type": "Value"});
    let seq = |v: Value| json!({"feature": v, "_type": layout.list_feature()});
    match f {
        Feature::Str => value("string"),
        Feature::Int => value("int64"),
        Feature::Image => json!({"_type": "Image"}),
        Feature::Strings => seq(value("string")),
        Feature::Images => seq(json!({"_type": "Image"})),
    }
}

/// The set's `datasets` features as `dataset_info.json` spells them in `layout` (column order
/// kept).
pub fn features_json(set: HfSet, layout: CacheLayout) -> Value {
    Value::Object(
        features(set)
            .into_iter()
            .map(|(n, f)| (n.to_string(), feature_json(f, layout)))
            .collect(),
    )
}

/// The Arrow schema of the set's files in `layout`, with the `huggingface` features metadata.
pub fn schema(set: HfSet, layout: CacheLayout) -> Schema {
    let fields: Vec<Field> = features(set)
        .into_iter()
        .map(|(n, f)| Field::new(n, arrow_type(f, layout), true))
        .collect();
    let meta = crate::pyjson::to_string(&json!({"info": {"features": features_json(set, layout)}}));
    Schema::new_with_metadata(fields, HashMap::from([(HF_METADATA_KEY.to_string(), meta)]))
}

/// An encoded image and its file path, an `Image()` cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageCell {
    /// The encoded image.
    pub bytes: Vec<u8>,
    /// Its file name, if any.
    pub path: Option<String>,
}

/// One row of a retrieval set (Flickr / MSCOCO columns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrievalRecord {
    /// `image`.
    pub image: ImageCell,
    /// `caption`, in order.
    pub captions: Vec<String>,
    /// `sentids`, one per caption.
    pub sentids: Vec<String>,
    /// `img_id`.
    pub img_id: String,
    /// `filename`.
    pub filename: String,
}

/// One WinoGAViL instance (its columns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WinogavilRecord {
    /// `candidates`.
    pub candidates: Vec<String>,
    /// `cue`.
    pub cue: String,
    /// `associations` (names among the candidates).
    pub associations: Vec<String>,
    /// `candidate_images`, in the order of `candidates`.
    pub candidate_images: Vec<ImageCell>,
    /// `ID`.
    pub id: i64,
}

/// The rows of one set.
#[derive(Debug, Clone)]
pub enum SetRows {
    /// Flickr / MSCOCO rows.
    Retrieval(Vec<RetrievalRecord>),
    /// WinoGAViL instances.
    Winogavil(Vec<WinogavilRecord>),
}

impl SetRows {
    /// The number of rows.
    pub fn len(&self) -> usize {
        match self {
            Self::Retrieval(r) => r.len(),
            Self::Winogavil(r) => r.len(),
        }
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn image_builder() -> StructBuilder {
    StructBuilder::new(
        image_fields(),
        vec![
            Box::new(BinaryBuilder::new()),
            Box::new(StringBuilder::new()),
        ],
    )
}

fn append_image(b: &mut StructBuilder, cell: &ImageCell) {
    let bytes = b.field_builder::<BinaryBuilder>(0).expect("bytes builder");
    bytes.append_value(&cell.bytes);
    let path = b.field_builder::<StringBuilder>(1).expect("path builder");
    path.append_option(cell.path.as_deref());
    b.append(true);
}

fn string_list(layout: CacheLayout) -> ListBuilder<StringBuilder> {
    let item = Field::new(layout.list_item(), DataType::Utf8, true);
    ListBuilder::new(StringBuilder::new()).with_field(item)
}

fn append_strings(b: &mut ListBuilder<StringBuilder>, items: &[String]) {
    for s in items {
        b.values().append_value(s);
    }
    b.append(true);
}

/// The retrieval rows as columns in [`schema`]'s order.
fn retrieval_columns(rows: &[RetrievalRecord], layout: CacheLayout) -> Vec<ArrayRef> {
    let (mut image, mut caption, mut sentids) =
        (image_builder(), string_list(layout), string_list(layout));
    let (mut split, mut img_id, mut filename) = (
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
    );
    for r in rows {
        append_image(&mut image, &r.image);
        append_strings(&mut caption, &r.captions);
        append_strings(&mut sentids, &r.sentids);
        split.append_value(SPLIT);
        img_id.append_value(&r.img_id);
        filename.append_value(&r.filename);
    }
    vec![
        Arc::new(image.finish()),
        Arc::new(caption.finish()),
        Arc::new(sentids.finish()),
        Arc::new(split.finish()),
        Arc::new(img_id.finish()),
        Arc::new(filename.finish()),
    ]
}

/// The WinoGAViL rows as columns in [`schema`]'s order.
fn winogavil_columns(rows: &[WinogavilRecord], layout: CacheLayout) -> Vec<ArrayRef> {
    let (mut candidates, mut cue, mut associations) = (
        string_list(layout),
        StringBuilder::new(),
        string_list(layout),
    );
    let item = Field::new(layout.list_item(), DataType::Struct(image_fields()), true);
    let mut images = ListBuilder::new(image_builder()).with_field(item);
    let (mut num_assoc, mut num_cand, mut id) = (
        Int64Builder::new(),
        Int64Builder::new(),
        Int64Builder::new(),
    );
    for r in rows {
        append_strings(&mut candidates, &r.candidates);
        cue.append_value(&r.cue);
        append_strings(&mut associations, &r.associations);
        for cell in &r.candidate_images {
            append_image(images.values(), cell);
        }
        images.append(true);
        num_assoc.append_value(r.associations.len() as i64);
        num_cand.append_value(r.candidates.len() as i64);
        id.append_value(r.id);
    }
    vec![
        Arc::new(candidates.finish()),
        Arc::new(cue.finish()),
        Arc::new(associations.finish()),
        Arc::new(images.finish()),
        Arc::new(num_assoc.finish()),
        Arc::new(num_cand.finish()),
        Arc::new(id.finish()),
    ]
}

/// The rows of `set` as one record batch of [`schema`] in `layout`; an error if the rows are
/// not `set`'s kind, or a WinoGAViL instance's images do not match its candidates.
pub fn record_batch(set: HfSet, rows: &SetRows, layout: CacheLayout) -> Result<RecordBatch> {
    let columns = match (set.is_retrieval(), rows) {
        (true, SetRows::Retrieval(r)) => retrieval_columns(r, layout),
        (false, SetRows::Winogavil(r)) => {
            if let Some(bad) = r
                .iter()
                .find(|w| w.candidate_images.len() != w.candidates.len())
            {
                bail!(
                    "{}: instance {}: {} candidates but {} images",
                    set.dataset_name(),
                    bad.id,
                    bad.candidates.len(),
                    bad.candidate_images.len()
                );
            }
            winogavil_columns(r, layout)
        }
        _ => bail!("{}: rows of the wrong kind", set.dataset_name()),
    };
    RecordBatch::try_new(Arc::new(schema(set, layout)), columns)
        .with_context(|| format!("{}: building the record batch", set.dataset_name()))
}
