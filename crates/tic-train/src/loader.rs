//! The training data loader: reads WebDataset shards (local or object store), decodes images,
//! applies OpenCLIP's train transform (RandomResizedCrop, scale (0.9, 1)) and tokenizes
//! captions on a pool of worker threads, and hands out batches through a bounded prefetch
//! channel.
//!
//! Batches are a pure function of the [`Plan`], the seed and the start position: sample `n` of
//! the stream is augmented with an RNG seeded by `(seed, n)`, so the thread count and timing
//! never change the data. Each batch carries the stream position after it, which is what a
//! checkpoint stores to resume.
//!
//! Data parallelism ([`LoaderOptions::rank`] of [`LoaderOptions::world`]): the stream is cut
//! into global steps of `world × micro_batches × batch_size` samples; rank r loads the r-th
//! contiguous slice of each step and hands it out as `micro_batches` batches. The samples, their
//! augmentation and the positions are those of one process reading the same global step, so W
//! ranks together see exactly the images one process would.
//!
//! Streamed shards (`pipe:` and object-store URLs) go through a bounded [`ShardScratch`]: a
//! stager thread copies the shards of the coming sampling blocks ahead of the loader, within
//! `--scratch_limit`, and the loader evicts a block's shards once it has loaded its last step
//! in that block. Local shards are mapped where they are.

use std::collections::HashMap;
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use anyhow::{bail, Context, Result};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use tic_model::preprocess::{decode_rgb, eval_transform, RandomResizedCrop};
use tic_model::Tokenizer;
use tic_shards::storage::{LocalCopy, Location};
use tic_shards::wds::{member_bytes, scan_shard, SampleRef};

use crate::plan::{mix, Plan, Position, SampleId};
use crate::preempt::StopSignal;
use crate::scratch::{Scratch, ScratchFile, ScratchLimit};

/// The scratch folder of streamed shards, holding opened shards.
pub type ShardScratch = Scratch<OpenShard>;

/// Sampling blocks the stager may stage ahead of the loader's (more only while the loader
/// waits for a shard).
const STAGE_AHEAD_BLOCKS: u64 = 1;

/// What keeps an opened shard's bytes on disk.
enum Hold {
    /// The file itself, or an unbounded temporary copy (deleted on drop).
    Copy(#[allow(dead_code)] LocalCopy),
    /// A copy in the bounded scratch folder (deleted, its bytes given back, on drop).
    Scratch(#[allow(dead_code)] ScratchFile),
}

/// Image member extensions, in OpenCLIP's order of preference (`jpg;png;jpeg;webp`).
pub const IMAGE_EXTS: [&str; 4] = ["jpg", "png", "jpeg", "webp"];

/// An opened shard: its bytes (memory-mapped) and samples.
pub struct OpenShard {
    _hold: Hold,
    map: memmap2::Mmap,
    samples: Vec<SampleRef>,
    name: String,
}

impl OpenShard {
    /// Opens (downloading if remote) and scans a shard; a corrupt tar is an error naming it.
    pub fn open(loc: &Location) -> Result<Self> {
        let copy = loc.fetch()?;
        let path = copy.path().to_path_buf();
        Self::map(loc, &path, Hold::Copy(copy))
    }

    /// Copies a streamed shard into `scratch` (within its limit) and scans it there.
    pub fn staged(loc: &Location, scratch: &ShardScratch) -> Result<Self> {
        let file = scratch.stage_file(loc)?;
        let path = file.path().to_path_buf();
        Self::map(loc, &path, Hold::Scratch(file))
    }

    fn map(loc: &Location, path: &std::path::Path, hold: Hold) -> Result<Self> {
        let f = std::fs::File::open(path).with_context(|| format!("opening {loc}"))?;
        // SAFETY: shards are read-only inputs; they are not modified while training.
        let map = unsafe { memmap2::Mmap::map(&f) }.with_context(|| format!("mapping {loc}"))?;
        let scan = scan_shard(&map, &loc.to_string());
        if let Some(e) = scan.errors.first() {
            bail!("{e}");
        }
        Ok(Self {
            _hold: hold,
            map,
            samples: scan.samples,
            name: loc.to_string(),
        })
    }

    /// Number of samples in the shard.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// True when the shard has no sample.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// (encoded image bytes, caption) of sample `i`.
    pub fn image_text(&self, i: usize) -> Result<(&[u8], String)> {
        let s = self.samples.get(i).with_context(|| {
            format!(
                "{}: sample #{i} requested but the shard has {} samples (sizes.json disagrees with the tar)",
                self.name,
                self.samples.len()
            )
        })?;
        let img = IMAGE_EXTS
            .iter()
            .find_map(|e| s.member(e))
            .with_context(|| {
                format!(
                    "{}: sample {:?} (byte {}) has no image member ({})",
                    self.name,
                    s.key,
                    s.offset(),
                    IMAGE_EXTS.join("/")
                )
            })?;
        let txt = s.member("txt").with_context(|| {
            format!(
                "{}: sample {:?} (byte {}) has no txt member",
                self.name,
                s.key,
                s.offset()
            )
        })?;
        Ok((
            member_bytes(&self.map, img),
            String::from_utf8_lossy(member_bytes(&self.map, txt)).into_owned(),
        ))
    }

    /// Says which image did not decode: the shard, the sample key, its image member and its
    /// index and byte offset in the tar.
    fn undecodable_image(&self, i: usize) -> String {
        let Some(s) = self.samples.get(i) else {
            return format!("{}: sample #{i}: image does not decode", self.name);
        };
        let ext = IMAGE_EXTS
            .iter()
            .find(|e| s.member(e).is_some())
            .unwrap_or(&"image");
        format!(
            "{}: sample {:?} (#{i} in the shard, byte {}): its {ext} member does not decode",
            self.name,
            s.key,
            s.offset()
        )
    }
}

/// Opened shards, shared by the workers. Local shards are opened once and kept while the
/// loader lives; with a scratch folder ([`ShardStore::with_scratch`]) streamed shards are
/// staged ahead by the loader's stager and evicted after use, else opened once into unbounded
/// temporary copies.
#[derive(Clone)]
pub struct ShardStore {
    locations: Arc<Vec<Location>>,
    open: Arc<Mutex<HashMap<u32, Arc<OpenShard>>>>,
    scratch: Option<Arc<ShardScratch>>,
}

impl ShardStore {
    /// A store over the plan's shard locations (index = plan shard index).
    pub fn new(locations: Vec<Location>) -> Self {
        Self {
            locations: Arc::new(locations),
            open: Arc::default(),
            scratch: None,
        }
    }

    /// A store whose streamed shards (if any) go through a scratch folder of at most `limit`.
    pub fn with_scratch(locations: Vec<Location>, limit: ScratchLimit) -> Result<Self> {
        let streamed = locations.iter().any(Self::streamed);
        let mut s = Self::new(locations);
        if streamed {
            s.scratch = Some(Arc::new(Scratch::new(limit)?));
        }
        Ok(s)
    }

    fn streamed(loc: &Location) -> bool {
        loc.is_pipe() || loc.is_remote()
    }

    /// The scratch folder of the streamed shards, if the store has one.
    pub fn scratch(&self) -> Option<Arc<ShardScratch>> {
        self.scratch.clone()
    }

    fn location(&self, i: u32) -> Result<&Location> {
        self.locations
            .get(i as usize)
            .with_context(|| format!("shard index {i} out of range"))
    }

    /// Shard `i`, opened on first use (a streamed shard with a scratch folder: when staged).
    pub fn get(&self, i: u32) -> Result<Arc<OpenShard>> {
        let loc = self.location(i)?;
        if let Some(sc) = self.scratch.as_ref().filter(|_| Self::streamed(loc)) {
            return sc.get(i, &|| loc.to_string());
        }
        if let Some(s) = self.open.lock().expect("store lock").get(&i) {
            return Ok(s.clone());
        }
        let s = Arc::new(OpenShard::open(loc)?);
        self.open
            .lock()
            .expect("store lock")
            .entry(i)
            .or_insert_with(|| s.clone());
        Ok(s)
    }
}

/// One training batch, on the host.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Images `[B,3,S,S]` (OpenCLIP-normalised), row-major.
    pub images: Vec<f32>,
    /// Token ids `[B, context_length]`.
    pub tokens: Vec<u32>,
    /// Number of samples.
    pub size: usize,
    /// Image side.
    pub image_size: usize,
    /// Per sample: the input (`::` entry / time split) it came from.
    pub inputs: Vec<usize>,
    /// Per sample: its id in the plan.
    pub ids: Vec<SampleId>,
    /// Stream position after this batch.
    pub end: Position,
}

/// Loader settings.
#[derive(Debug, Clone)]
pub struct LoaderOptions {
    /// Samples per batch (per rank and micro-batch).
    pub batch_size: usize,
    /// Batches per optimizer step on each rank (gradient accumulation rounds).
    pub micro_batches: usize,
    /// This process's slice of every global step (0 with one process).
    pub rank: usize,
    /// Number of slices a global step is cut into (1 with one process).
    pub world: usize,
    /// Output image side.
    pub image_size: u32,
    /// Text context length (token ids per caption).
    pub context_length: usize,
    /// Worker threads for decoding.
    pub workers: usize,
    /// Batches prepared ahead.
    pub prefetch: usize,
    /// Augmentation seed.
    pub seed: u64,
}

/// Loads and train-transforms one sample (the `n`-th of the stream).
pub fn load_train_sample(
    store: &ShardStore,
    id: SampleId,
    n: u64,
    image_size: u32,
    context_length: usize,
    seed: u64,
) -> Result<(Vec<f32>, Vec<u32>)> {
    let shard = store.get(id.shard)?;
    let (img, text) = shard.image_text(id.index as usize)?;
    let rgb = decode_rgb(img).with_context(|| shard.undecodable_image(id.index as usize))?;
    let mut rng = ChaCha8Rng::seed_from_u64(mix(seed ^ mix(n)));
    let pixels = RandomResizedCrop::openclip(image_size).apply(&rgb, &mut rng);
    Ok((
        pixels,
        Tokenizer::shared().tokenize_one_to(&text, context_length),
    ))
}

/// Loads one sample with the eval transform (resize shortest side + center crop).
pub fn load_eval_sample(
    store: &ShardStore,
    id: SampleId,
    image_size: u32,
    context_length: usize,
) -> Result<(Vec<f32>, Vec<u32>)> {
    let shard = store.get(id.shard)?;
    let (img, text) = shard.image_text(id.index as usize)?;
    let rgb = decode_rgb(img).with_context(|| shard.undecodable_image(id.index as usize))?;
    Ok((
        eval_transform(&rgb, image_size),
        Tokenizer::shared().tokenize_one_to(&text, context_length),
    ))
}

/// A running loader: batches in stream order.
pub struct Loader {
    rx: Receiver<Result<Batch>>,
    handle: Option<JoinHandle<()>>,
    stager: Option<(Arc<ShardScratch>, JoinHandle<()>)>,
}

/// The stager of a store with a scratch folder: copies the streamed shards of blocks
/// `from`, `from + 1`, … in order (each pinned by every block that draws it), at most
/// [`STAGE_AHEAD_BLOCKS`] ahead of the loader, within the scratch limit.
fn start_stager(
    plan: Arc<Plan>,
    store: &ShardStore,
    from: u64,
) -> Result<Option<(Arc<ShardScratch>, JoinHandle<()>)>> {
    let Some(scratch) = store.scratch() else {
        return Ok(None);
    };
    scratch.restart(from);
    let (sc, st) = (scratch.clone(), store.clone());
    let handle = std::thread::Builder::new()
        .name("tic-train-stager".into())
        .spawn(move || {
            for k in from.. {
                if !sc.wait_to_stage(k, STAGE_AHEAD_BLOCKS) {
                    return;
                }
                let mut shards = plan.block_shards(k);
                shards.sort_unstable();
                shards.dedup();
                for i in shards {
                    let Ok(loc) = st.location(i) else { continue };
                    if !ShardStore::streamed(loc) || sc.pin(i, k) {
                        continue;
                    }
                    match OpenShard::staged(loc, &sc) {
                        Ok(s) => sc.insert(i, Arc::new(s), k),
                        Err(_) if sc.is_closed() => return,
                        Err(e) => return sc.fail(format!("staging {loc}: {e:#}")),
                    }
                }
            }
        })
        .context("starting the shard stager thread")?;
    Ok(Some((scratch, handle)))
}

impl Loader {
    /// Starts loading batches from `start` on `opts.workers` threads. A batch's
    /// [`Batch::end`] is the stream position after the global step it belongs to.
    pub fn start(
        plan: Arc<Plan>,
        store: ShardStore,
        opts: LoaderOptions,
        start: Position,
    ) -> Result<Self> {
        if opts.batch_size == 0 {
            bail!("batch size must be positive");
        }
        if opts.rank >= opts.world.max(1) {
            bail!("rank {} of a world of {}", opts.rank, opts.world);
        }
        let micro = opts.micro_batches.max(1);
        let slice = opts.batch_size * micro;
        let step_len = slice * opts.world.max(1);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(opts.workers.max(1))
            .thread_name(|i| format!("tic-train-loader-{i}"))
            .build()
            .context("starting loader threads")?;
        let (tx, rx) = sync_channel(opts.prefetch.max(1));
        let stager = start_stager(plan.clone(), &store, start.block)?;
        let handle = std::thread::Builder::new()
            .name("tic-train-loader".into())
            .spawn(move || {
                let mut it = plan.iter_from(start);
                'steps: loop {
                    let mut step: Vec<(SampleId, Position)> = (&mut it).take(step_len).collect();
                    if step.len() < step_len {
                        // The stream ends only when a shard could not be counted (pipe: URLs).
                        let e = it
                            .error()
                            .unwrap_or_else(|| anyhow::anyhow!("the sample stream ended"));
                        let _ = tx.send(Err(e));
                        break 'steps;
                    }
                    let end = step.last().expect("step_len > 0").1;
                    let mine: Vec<_> = step
                        .drain(opts.rank * slice..(opts.rank + 1) * slice)
                        .collect();
                    for items in mine.chunks(opts.batch_size) {
                        let rows: Result<Vec<(Vec<f32>, Vec<u32>)>> = pool.install(|| {
                            items
                                .par_iter()
                                .map(|(id, pos)| {
                                    load_train_sample(
                                        &store,
                                        *id,
                                        pos.consumed - 1,
                                        opts.image_size,
                                        opts.context_length,
                                        opts.seed,
                                    )
                                })
                                .collect()
                        });
                        let batch = rows.map(|rows| {
                            let s = opts.image_size as usize;
                            let mut images = Vec::with_capacity(rows.len() * 3 * s * s);
                            let mut tokens = Vec::with_capacity(rows.len() * opts.context_length);
                            for (p, t) in rows {
                                images.extend_from_slice(&p);
                                tokens.extend_from_slice(&t);
                            }
                            Batch {
                                images,
                                tokens,
                                size: items.len(),
                                image_size: s,
                                inputs: items
                                    .iter()
                                    .map(|(id, _)| plan.shards()[id.shard as usize].input)
                                    .collect(),
                                ids: items.iter().map(|x| x.0).collect(),
                                end,
                            }
                        });
                        let failed = batch.is_err();
                        if tx.send(batch).is_err() || failed {
                            break 'steps;
                        }
                    }
                    // This rank is done with the blocks before the step's end.
                    if let Some(sc) = &store.scratch {
                        sc.release_before(end.block);
                    }
                }
            })
            .context("starting the loader thread")?;
        Ok(Self {
            rx,
            handle: Some(handle),
            stager,
        })
    }

    /// The next batch (blocks until it is ready).
    pub fn next_batch(&mut self) -> Result<Batch> {
        self.rx
            .recv()
            .context("the loader thread stopped unexpectedly")?
    }

    /// The next batch, or `None` as soon as `stop` is requested while waiting for it.
    pub fn next_batch_unless(&mut self, stop: &StopSignal) -> Result<Option<Batch>> {
        loop {
            if stop.requested() {
                return Ok(None);
            }
            match self.rx.recv_timeout(std::time::Duration::from_millis(50)) {
                Ok(b) => return b.map(Some),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    bail!("the loader thread stopped unexpectedly")
                }
            }
        }
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        // Waits on the scratch folder end; the staged copies go with the store.
        if let Some((sc, _)) = &self.stager {
            sc.close();
        }
        // Dropping the receiver makes the thread's next send fail; drain so it is not blocked.
        while self.rx.try_recv().is_ok() {}
        if let Some(h) = self.handle.take() {
            // Replace the receiver end by closing it: the thread exits at its next send.
            let (_, dead) = sync_channel::<Result<Batch>>(0);
            let rx = std::mem::replace(&mut self.rx, dead);
            drop(rx);
            let _ = h.join();
        }
        if let Some((_, h)) = self.stager.take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tic_shards::wds::TarSampleWriter;

    /// Issue 15 item 6: a corrupt image names the shard and the sample key (not only an index).
    #[test]
    fn corrupt_image_error_names_key_and_shard() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("00000007.tar");
        let mut tw = TarSampleWriter::new(Vec::new());
        tw.append_sample(
            "first-0",
            &mut [("png", b"no png", 0), ("txt", b"a cat", 0)],
        )
        .unwrap();
        tw.append_sample(
            "0123456789abcdef0123456789abcdef-0",
            &mut [("jpg", b"\xff\xd8\xffnot a jpeg", 0), ("txt", b"a dog", 0)],
        )
        .unwrap();
        std::fs::write(&path, tw.finish().unwrap()).unwrap();
        let store = ShardStore::new(vec![Location::local(&path)]);
        let bad = SampleId { shard: 0, index: 1 };
        for err in [
            load_train_sample(&store, bad, 1, 8, 77, 0).unwrap_err(),
            load_eval_sample(&store, bad, 8, 77).unwrap_err(),
        ] {
            let msg = format!("{err:#}");
            assert!(msg.contains("00000007.tar"), "{msg}");
            assert!(
                msg.contains("\"0123456789abcdef0123456789abcdef-0\""),
                "{msg}"
            );
            assert!(msg.contains("jpg member does not decode"), "{msg}");
        }
    }
}
