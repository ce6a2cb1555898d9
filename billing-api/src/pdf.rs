//! Minimal PDF 1.4 writer for invoices and billing statements.
//!
//! Turns a [`Doc`] (headings, wrapped paragraphs, key/value blocks, tables)
//! into A4 pages a person can read in any viewer: page breaks with the table
//! header repeated, and a "Page N of M" footer. Only the base-14 fonts
//! Helvetica and Helvetica-Bold are used, so nothing is embedded, files stay
//! a few kilobytes, and there is no dependency beyond std. Text is encoded as
//! WinAnsi (Latin-1 plus €, dashes, curly quotes, bullet); anything else is
//! drawn as `?`. The output is deterministic (no timestamps, no random file
//! IDs): the same `Doc` always gives the same bytes, so a stored invoice can be
//! re-rendered and compared byte for byte.

mod metrics;

use std::fmt::Write as _;

/// A document: its title is drawn on page 1, repeated in every footer, and
/// stored as the PDF's /Title.
#[derive(Debug, Clone, PartialEq)]
pub struct Doc {
    pub title: String,
    pub blocks: Vec<Block>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    /// Bold, larger; kept on the same page as the line after it.
    Heading(String),
    /// A paragraph wrapped at the page width; `\n` starts a new line.
    Text(String),
    /// Two columns, key bold; long values wrap inside the value column.
    KeyValues(Vec<(String, String)>),
    /// Cells too wide for their column end in "..."; the header row is repeated
    /// on every page the table spans; `bold_last_row` marks a totals row.
    Table { columns: Vec<Column>, rows: Vec<Vec<String>>, bold_last_row: bool },
    /// Vertical space of about one line.
    Spacer,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub title: String,
    pub width_mm: f32,
    pub align_right: bool,
}

const PAGE_W: f32 = 595.28;
const PAGE_H: f32 = 841.89;
const MM: f32 = 72.0 / 25.4;
const MARGIN: f32 = 18.0 * MM;
const CONTENT_W: f32 = PAGE_W - 2.0 * MARGIN;
const TOP: f32 = PAGE_H - MARGIN;
/// Content stops here; the strip below it, down to the margin, holds the footer.
const BOTTOM: f32 = MARGIN + 16.0;
const TITLE_SIZE: f32 = 14.0;
const HEADING_SIZE: f32 = 12.0;
const BODY_SIZE: f32 = 10.0;
const TABLE_SIZE: f32 = 9.0;
const FOOTER_SIZE: f32 = 9.0;
const LEADING: f32 = 1.4;
/// Horizontal breathing room inside table cells, so adjacent columns never touch.
const CELL_PAD: f32 = 2.0;
const KEY_GAP: f32 = 12.0;
const ELLIPSIS: &[u8] = b"...";

/// Renders the document to the bytes of a complete PDF file.
pub fn render(doc: &Doc) -> Vec<u8> {
    // Layout runs to completion first: the footer needs the total page count.
    let pages = layout(doc);
    let count = pages.len();
    let mut w = Writer::default();
    // The comment of high bytes tells transfer tools the file is binary.
    w.buf.extend_from_slice(b"%PDF-1.4\n%\xE2\xE3\xCF\xD3\n");
    // Fixed numbering: 1 catalog, 2 page tree, 3-4 fonts, 5 info, then each
    // page i takes 6 + 2i and its content stream 7 + 2i.
    w.object("<< /Type /Catalog /Pages 2 0 R >>");
    let kids: Vec<String> = (0..count).map(|i| format!("{} 0 R", 6 + 2 * i)).collect();
    w.object(&format!("<< /Type /Pages /Kids [{}] /Count {count} >>", kids.join(" ")));
    for font in ["Helvetica", "Helvetica-Bold"] {
        w.object(&format!(
            "<< /Type /Font /Subtype /Type1 /BaseFont /{font} /Encoding /WinAnsiEncoding >>"
        ));
    }
    w.object(&format!("<< /Title {} /Producer (fairwatt) >>", text_string(&doc.title)));
    let footer_title = truncate(&encode_line(&doc.title), false, FOOTER_SIZE, CONTENT_W / 2.0);
    for (i, ops) in pages.iter().enumerate() {
        w.object(&format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {} {}] \
             /Resources << /Font << /F1 3 0 R /F2 4 0 R >> >> /Contents {} 0 R >>",
            num(PAGE_W),
            num(PAGE_H),
            7 + 2 * i
        ));
        let mut content = String::new();
        for op in ops {
            op.write(&mut content);
        }
        let label = format!("Page {} of {count}", i + 1);
        let right = PAGE_W - MARGIN - width(label.as_bytes(), false, FOOTER_SIZE);
        Op::text(MARGIN, MARGIN, FOOTER_SIZE, false, footer_title.clone()).write(&mut content);
        Op::text(right, MARGIN, FOOTER_SIZE, false, label.into_bytes()).write(&mut content);
        w.stream(content.as_bytes());
    }
    w.finish()
}

/// Something drawn on a page, positioned in PDF points from the bottom left.
enum Op {
    Text { x: f32, y: f32, size: f32, bold: bool, bytes: Vec<u8> },
    Rule { x1: f32, x2: f32, y: f32 },
}

impl Op {
    fn text(x: f32, y: f32, size: f32, bold: bool, bytes: Vec<u8>) -> Op {
        Op::Text { x, y, size, bold, bytes }
    }

    fn write(&self, out: &mut String) {
        match self {
            Op::Text { x, y, size, bold, bytes } => {
                let font = if *bold { "F2" } else { "F1" };
                let _ = write!(out, "BT /{font} {} Tf {} {} Td ", num(*size), num(*x), num(*y));
                pdf_string(bytes, out);
                out.push_str(" Tj ET\n");
            }
            Op::Rule { x1, x2, y } => {
                let (x1, x2, y) = (num(*x1), num(*x2), num(*y));
                let _ = writeln!(out, "0.5 w {x1} {y} m {x2} {y} l S");
            }
        }
    }
}

/// Cursor over the pages being laid out; `y` is the top of the next line.
struct Layout {
    pages: Vec<Vec<Op>>,
    y: f32,
}

fn layout(doc: &Doc) -> Vec<Vec<Op>> {
    let mut l = Layout { pages: vec![Vec::new()], y: TOP };
    l.paragraph(&doc.title, true, TITLE_SIZE);
    l.y -= 8.0;
    for block in &doc.blocks {
        match block {
            Block::Heading(text) => {
                if l.y < TOP {
                    l.y -= 6.0;
                }
                // A heading alone at the foot of a page reads as a mistake.
                l.reserve(HEADING_SIZE * LEADING + BODY_SIZE * LEADING);
                l.paragraph(text, true, HEADING_SIZE);
                l.y -= 2.0;
            }
            Block::Text(text) => {
                for line in text.split('\n') {
                    l.paragraph(line, false, BODY_SIZE);
                }
                l.y -= 4.0;
            }
            Block::KeyValues(pairs) => {
                l.key_values(pairs);
                l.y -= 4.0;
            }
            Block::Table { columns, rows, bold_last_row } => {
                l.table(columns, rows, *bold_last_row);
                l.y -= 4.0;
            }
            Block::Spacer => l.y -= BODY_SIZE * LEADING,
        }
    }
    l.pages
}

impl Layout {
    /// Moves to a fresh page unless `height` more points fit on this one and
    /// reports whether it did. A page that is still empty is never left behind,
    /// so nothing can push out blank pages forever.
    fn reserve(&mut self, height: f32) -> bool {
        if self.y - height >= BOTTOM || self.y >= TOP {
            return false;
        }
        self.pages.push(Vec::new());
        self.y = TOP;
        true
    }

    /// Draws one line of text on the current line, baseline one font size below its top.
    fn put(&mut self, x: f32, size: f32, bold: bool, bytes: Vec<u8>) {
        if !bytes.is_empty() {
            let op = Op::text(x, self.y - size, size, bold, bytes);
            self.pages.last_mut().expect("layout always has a page").push(op);
        }
    }

    fn rule(&mut self, x1: f32, x2: f32, y: f32) {
        self.pages.last_mut().expect("layout always has a page").push(Op::Rule { x1, x2, y });
    }

    fn paragraph(&mut self, text: &str, bold: bool, size: f32) {
        for line in wrap(&encode_line(text), bold, size, CONTENT_W) {
            self.reserve(size * LEADING);
            self.put(MARGIN, size, bold, line);
            self.y -= size * LEADING;
        }
    }

    fn key_values(&mut self, pairs: &[(String, String)]) {
        let keys: Vec<Vec<u8>> = pairs.iter().map(|(k, _)| encode_line(k)).collect();
        let widest = keys.iter().map(|k| width(k, true, BODY_SIZE)).fold(0.0, f32::max);
        // Cap the key column so one long label cannot squeeze every value.
        let key_w = (widest + KEY_GAP).min(CONTENT_W * 0.4);
        let line_h = BODY_SIZE * LEADING;
        for (key, (_, value)) in keys.into_iter().zip(pairs) {
            let lines = wrap(&encode_line(value), false, BODY_SIZE, CONTENT_W - key_w);
            self.reserve(line_h);
            self.put(MARGIN, BODY_SIZE, true, truncate(&key, true, BODY_SIZE, key_w - KEY_GAP));
            for (i, line) in lines.into_iter().enumerate() {
                if i > 0 {
                    self.reserve(line_h);
                }
                self.put(MARGIN + key_w, BODY_SIZE, false, line);
                self.y -= line_h;
            }
        }
    }

    fn table(&mut self, columns: &[Column], rows: &[Vec<String>], bold_last_row: bool) {
        let total: f32 = columns.iter().map(|c| c.width_mm.max(0.0) * MM).sum();
        // Shrink rather than run past the right margin when the widths don't fit.
        let scale = if total > CONTENT_W { CONTENT_W / total } else { 1.0 };
        let mut cells = Vec::with_capacity(columns.len());
        let mut x = MARGIN;
        for c in columns {
            let w = c.width_mm.max(0.0) * MM * scale;
            cells.push((x, w, c.align_right));
            x += w;
        }
        let right = x;
        let row_h = TABLE_SIZE * LEADING;
        let titles: Vec<String> = columns.iter().map(|c| c.title.clone()).collect();
        // The header must not be stranded without at least one row under it.
        self.reserve(row_h * 2.0 + 3.0);
        self.table_row(&cells, &titles, true);
        self.rule(MARGIN, right, self.y + 1.0);
        self.y -= 2.0;
        for (i, row) in rows.iter().enumerate() {
            let bold = bold_last_row && i + 1 == rows.len();
            if self.reserve(row_h + 2.0) {
                self.table_row(&cells, &titles, true);
                self.rule(MARGIN, right, self.y + 1.0);
                self.y -= 2.0;
            }
            if bold {
                self.y -= 2.0;
                self.rule(MARGIN, right, self.y);
            }
            self.table_row(&cells, row, bold);
        }
    }

    fn table_row(&mut self, cells: &[(f32, f32, bool)], row: &[String], bold: bool) {
        for (&(x, w, align_right), text) in cells.iter().zip(row) {
            let bytes = truncate(&encode_line(text), bold, TABLE_SIZE, w - 2.0 * CELL_PAD);
            let x = if align_right {
                x + w - CELL_PAD - width(&bytes, bold, TABLE_SIZE)
            } else {
                x + CELL_PAD
            };
            self.put(x, TABLE_SIZE, bold, bytes);
        }
        self.y -= TABLE_SIZE * LEADING;
    }
}

/// Width in points of WinAnsi-encoded text.
fn width(bytes: &[u8], bold: bool, size: f32) -> f32 {
    let table = if bold { &metrics::HELVETICA_BOLD } else { &metrics::HELVETICA };
    let glyph = |b: u8| b.checked_sub(32).map_or(0, |i| u32::from(table[usize::from(i)]));
    let units: u32 = bytes.iter().map(|&b| glyph(b)).sum();
    units as f32 * size / 1000.0
}

/// How many leading bytes fit into `max_w` points.
fn fitting_prefix(bytes: &[u8], bold: bool, size: f32, max_w: f32) -> usize {
    let mut used = 0.0;
    for (i, b) in bytes.iter().enumerate() {
        used += width(std::slice::from_ref(b), bold, size);
        if used > max_w + 0.001 {
            return i;
        }
    }
    bytes.len()
}

/// Cuts text to `max_w`, marking the cut with "..." so a reader knows it is incomplete.
fn truncate(bytes: &[u8], bold: bool, size: f32, max_w: f32) -> Vec<u8> {
    if width(bytes, bold, size) <= max_w + 0.001 {
        return bytes.to_vec();
    }
    let room = max_w - width(ELLIPSIS, bold, size);
    let mut out = bytes[..fitting_prefix(bytes, bold, size, room)].to_vec();
    while out.last() == Some(&b' ') {
        out.pop();
    }
    out.extend_from_slice(ELLIPSIS);
    out
}

/// Greedy word wrap; words longer than a whole line (IBANs, URLs) are split.
fn wrap(text: &[u8], bold: bool, size: f32, max_w: f32) -> Vec<Vec<u8>> {
    let space = width(b" ", bold, size);
    let mut lines = Vec::new();
    let mut line: Vec<u8> = Vec::new();
    for mut word in text.split(|&b| b == b' ').filter(|w| !w.is_empty()) {
        loop {
            let sep = if line.is_empty() { 0.0 } else { space };
            if width(&line, bold, size) + sep + width(word, bold, size) <= max_w + 0.001 {
                if !line.is_empty() {
                    line.push(b' ');
                }
                line.extend_from_slice(word);
                break;
            }
            if !line.is_empty() {
                lines.push(std::mem::take(&mut line));
                continue;
            }
            let n = fitting_prefix(word, bold, size, max_w).max(1);
            lines.push(word[..n].to_vec());
            word = &word[n..];
            if word.is_empty() {
                break;
            }
        }
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

/// WinAnsi codes 0x80..=0x9F; '\0' marks the codes WinAnsi leaves undefined.
const WIN_ANSI_80: [char; 32] = [
    '€', '\0', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\0', 'Ž', '\0', //
    '\0', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\0', 'ž', 'Ÿ',
];

/// Maps one line of text to WinAnsi bytes; tabs and line breaks become spaces.
fn encode_line(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| match c {
            '\t' | '\n' | '\r' => b' ',
            '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' => b'?',
            ' '..='~' | '\u{a0}'..='\u{ff}' => c as u8,
            _ => WIN_ANSI_80.iter().position(|&w| w == c).map_or(b'?', |i| 0x80 + i as u8),
        })
        .collect()
}

/// Writes a PDF literal string; bytes outside ASCII go as octal escapes so the
/// content stream stays plain ASCII.
fn pdf_string(bytes: &[u8], out: &mut String) {
    out.push('(');
    for &b in bytes {
        match b {
            b'(' | b')' | b'\\' => {
                out.push('\\');
                out.push(b as char);
            }
            0x20..=0x7e => out.push(b as char),
            _ => {
                let _ = write!(out, "\\{b:03o}");
            }
        }
    }
    out.push(')');
}

/// A text string for the document info: metadata is not WinAnsi but
/// PDFDocEncoding, so anything beyond ASCII goes as UTF-16BE with a BOM.
fn text_string(text: &str) -> String {
    let mut out = String::new();
    if text.chars().all(|c| (' '..='~').contains(&c)) {
        pdf_string(text.as_bytes(), &mut out);
    } else {
        out.push_str("<FEFF");
        for unit in text.encode_utf16() {
            let _ = write!(out, "{unit:04X}");
        }
        out.push('>');
    }
    out
}

/// Formats a coordinate with at most two decimals, which is far finer than print needs.
fn num(v: f32) -> String {
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".to_string() } else { s.to_string() }
}

/// Appends numbered objects in order and remembers where each one starts,
/// which is what the cross-reference table has to list.
#[derive(Default)]
struct Writer {
    buf: Vec<u8>,
    offsets: Vec<usize>,
}

impl Writer {
    fn begin(&mut self) {
        self.offsets.push(self.buf.len());
        let header = format!("{} 0 obj\n", self.offsets.len());
        self.buf.extend_from_slice(header.as_bytes());
    }

    fn object(&mut self, body: &str) {
        self.begin();
        self.buf.extend_from_slice(body.as_bytes());
        self.buf.extend_from_slice(b"\nendobj\n");
    }

    fn stream(&mut self, data: &[u8]) {
        self.begin();
        let dict = format!("<< /Length {} >>\nstream\n", data.len());
        self.buf.extend_from_slice(dict.as_bytes());
        self.buf.extend_from_slice(data);
        self.buf.extend_from_slice(b"\nendstream\nendobj\n");
    }

    fn finish(mut self) -> Vec<u8> {
        let xref = self.buf.len();
        let size = self.offsets.len() + 1;
        // Every entry must be exactly 20 bytes, hence the space before "\n".
        let mut table = format!("xref\n0 {size}\n0000000000 65535 f \n");
        for offset in &self.offsets {
            let _ = writeln!(table, "{offset:010} 00000 n ");
        }
        let _ = write!(
            table,
            "trailer\n<< /Size {size} /Root 1 0 R /Info 5 0 R >>\nstartxref\n{xref}\n%%EOF\n"
        );
        self.buf.extend_from_slice(table.as_bytes());
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lopdf::content::Content;

    fn col(title: &str, width_mm: f32, align_right: bool) -> Column {
        Column { title: title.into(), width_mm, align_right }
    }

    fn invoice() -> Doc {
        let row = |d: &str, q: &str, a: &str| vec![d.to_string(), q.to_string(), a.to_string()];
        Doc {
            title: "Invoice FW-2024-0042".into(),
            blocks: vec![
                Block::KeyValues(vec![
                    ("Customer".into(), "ACME Compute GmbH".into()),
                    ("Period".into(), "2024-05-01 – 2024-05-31".into()),
                ]),
                Block::Spacer,
                Block::Heading("Usage".into()),
                Block::Text("Metered energy attributed to your workloads.".into()),
                Block::Table {
                    columns: vec![
                        col("Item", 90.0, false),
                        col("kWh", 30.0, true),
                        col("Amount", 40.0, true),
                    ],
                    rows: vec![
                        row("GPU nodes", "1,234.5", "€ 1,234.56"),
                        row("Storage", "12.0", "€ 12.50"),
                        row("Total", "1,246.5", "€ 1,247.06"),
                    ],
                    bold_last_row: true,
                },
            ],
        }
    }

    fn load(bytes: &[u8]) -> lopdf::Document {
        lopdf::Document::load_mem(bytes).expect("lopdf parses the output")
    }

    fn info(doc: &lopdf::Document) -> &lopdf::Dictionary {
        doc.get_dictionary(doc.trailer.get(b"Info").unwrap().as_reference().unwrap()).unwrap()
    }

    fn page_texts(doc: &lopdf::Document) -> Vec<String> {
        (1..=doc.get_pages().len() as u32).map(|n| doc.extract_text(&[n]).unwrap()).collect()
    }

    /// Every string shown on a page as (x, y, size, bold, bytes), read back from
    /// the content stream the way a viewer would.
    fn shown(doc: &lopdf::Document, page: u32) -> Vec<(f32, f32, f32, bool, Vec<u8>)> {
        let id = doc.get_pages()[&page];
        let ops = Content::decode(&doc.get_page_content(id)).unwrap().operations;
        let (mut font, mut size, mut pos, mut out) = (false, 0.0, (0.0, 0.0), Vec::new());
        for op in ops {
            let f = |i: usize| op.operands[i].as_float().unwrap();
            match op.operator.as_str() {
                "Tf" => (font, size) = (op.operands[0].as_name().unwrap() == b"F2", f(1)),
                "Td" => pos = (f(0), f(1)),
                "Tj" => out.push((pos.0, pos.1, size, font, op.operands[0].as_str().unwrap().to_vec())),
                _ => {}
            }
        }
        out
    }

    #[test]
    fn invoice_text_and_metadata_are_readable() {
        let bytes = render(&invoice());
        let doc = load(&bytes);
        let texts = page_texts(&doc);
        assert_eq!(texts.len(), 1);
        let needles = ["Invoice FW-2024-0042", "Customer", "ACME Compute GmbH", "Usage", "GPU nodes"];
        let amounts = ["1,234.5", "€ 1,234.56", "€ 12.50", "€ 1,247.06", "2024-05-01 – 2024-05-31"];
        for needle in needles.into_iter().chain(amounts).chain(["Page 1 of 1"]) {
            assert!(texts[0].contains(needle), "{needle:?} missing from {:?}", texts[0]);
        }
        // € and – travel as WinAnsi octal escapes, not as UTF-8.
        let raw = String::from_utf8_lossy(&bytes);
        assert!(raw.contains(r"(\200 12.50)") && raw.contains(r"\226"));
        let info = info(&doc);
        assert_eq!(info.get(b"Title").unwrap().as_str().unwrap(), b"Invoice FW-2024-0042");
        assert_eq!(info.get(b"Producer").unwrap().as_str().unwrap(), b"fairwatt");
        let shown = shown(&doc, 1);
        let total = shown.iter().find(|s| s.4 == b"\x80 1,247.06").unwrap();
        let key = shown.iter().find(|s| s.4 == b"Customer").unwrap();
        assert!(total.3 && key.3, "totals row and keys are bold");
        assert!(!shown.iter().find(|s| s.4 == b"ACME Compute GmbH").unwrap().3);
    }

    #[test]
    fn right_aligned_cells_end_at_the_column_edge() {
        let doc = load(&render(&invoice()));
        let shown = shown(&doc, 1);
        let edge = MARGIN + 160.0 * MM - CELL_PAD;
        for amount in [&b"\x80 1,234.56"[..], b"\x80 12.50", b"Amount"] {
            let s = shown.iter().find(|s| s.4 == amount).unwrap();
            assert!((s.0 + width(&s.4, s.3, s.2) - edge).abs() < 0.02, "{amount:?} at {}", s.0);
        }
        // Independent of our own width function: AFM says digits are 556, ',' and '.' 278.
        let s = shown.iter().find(|s| s.4 == b"1,234.5").unwrap();
        let expected = (5.0 * 556.0 + 2.0 * 278.0) * 9.0 / 1000.0;
        assert!((s.0 + expected - (MARGIN + 120.0 * MM - CELL_PAD)).abs() < 0.02);
    }

    fn long_table(rows: usize) -> Doc {
        let rows = (1..=rows).map(|i| vec![format!("Item {i:03}"), format!("{}.00", i * 3)]).collect();
        let columns = vec![col("Description", 100.0, false), col("Amount", 40.0, true)];
        let table = Block::Table { columns, rows, bold_last_row: false };
        Doc { title: "Statement".into(), blocks: vec![table] }
    }

    #[test]
    fn long_tables_break_pages_and_repeat_the_header() {
        let doc = load(&render(&long_table(150)));
        let texts = page_texts(&doc);
        let n = texts.len();
        assert!(n >= 3, "150 rows need several pages, got {n}");
        for (i, text) in texts.iter().enumerate() {
            assert!(text.contains(&format!("Page {} of {n}", i + 1)));
            let header = shown(&doc, i as u32 + 1);
            assert!(header.iter().any(|s| s.4 == b"Description" && s.3), "header on page {}", i + 1);
            assert!(header.iter().any(|s| s.4 == b"Amount" && s.3));
            assert!(header.iter().all(|s| s.1 >= MARGIN - 0.01 && s.1 <= TOP), "inside margins");
        }
        let all = texts.concat();
        for i in 1..=150 {
            assert_eq!(all.matches(&format!("Item {i:03}\n")).count(), 1, "row {i} exactly once");
        }
    }

    #[test]
    fn page_count_is_known_in_every_footer() {
        let texts = page_texts(&load(&render(&long_table(80))));
        assert_eq!(texts.len(), 2);
        assert!(texts[0].contains("Page 1 of 2") && texts[1].contains("Page 2 of 2"));
        assert!(texts[1].contains("Item 080") && !texts[0].contains("Item 080"));
    }

    #[test]
    fn parentheses_and_backslashes_round_trip() {
        let tricky = r"Refund (partial)) \ C:\bills\(x";
        let doc = Doc { title: tricky.into(), blocks: vec![Block::Text(format!("Note: {tricky}"))] };
        let bytes = render(&doc);
        assert!(String::from_utf8_lossy(&bytes).contains(r"(Refund \(partial\)\) \\ C:\\bills\\\(x)"));
        let pdf = load(&bytes);
        let text = &page_texts(&pdf)[0];
        assert!(text.contains(&format!("{tricky}\n")) && text.contains(&format!("Note: {tricky}\n")));
        assert_eq!(info(&pdf).get(b"Title").unwrap().as_str().unwrap(), tricky.as_bytes());
    }

    #[test]
    fn xref_offsets_point_at_their_objects() {
        let bytes = render(&long_table(150));
        let tail = String::from_utf8_lossy(&bytes[bytes.len() - 40..]).to_string();
        let start = tail.split("startxref\n").nth(1).unwrap().trim_end_matches("\n%%EOF\n");
        let start: usize = start.parse().unwrap();
        assert!(bytes.ends_with(b"%%EOF\n") && bytes[start..].starts_with(b"xref\n0 "));
        let table = String::from_utf8_lossy(&bytes[start..]).to_string();
        let mut lines = table.lines().skip(1);
        let size: usize = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
        assert_eq!(lines.next(), Some("0000000000 65535 f "));
        for n in 1..size {
            let entry = lines.next().unwrap();
            assert_eq!(entry.len(), 19, "20 bytes with the newline");
            assert!(entry.ends_with(" 00000 n "));
            let offset: usize = entry[..10].parse().unwrap();
            assert!(bytes[offset..].starts_with(format!("{n} 0 obj\n").as_bytes()), "object {n}");
        }
        assert_eq!(lines.next(), Some("trailer"));
        assert!(lines.next().unwrap().starts_with(&format!("<< /Size {size} /Root 1 0 R /Info 5 0 R")));
        assert_eq!(load(&bytes).get_pages().len() * 2 + 5, size - 1);
    }

    #[test]
    fn overlong_cells_are_truncated_not_overflowing() {
        let long = "Dedicated inference cluster in Frankfurt, rack 12";
        let rows = vec![vec![long.to_string(), "€ 123,456,789,012.34".to_string()]];
        let columns = vec![col("Description", 30.0, false), col("Amount", 20.0, true)];
        let blocks = vec![Block::Table { columns, rows, bold_last_row: false }];
        let doc = load(&render(&Doc { title: "T".into(), blocks }));
        let text = &page_texts(&doc)[0];
        assert!(!text.contains(long) && !text.contains("123,456,789,012.34"));
        let shown = shown(&doc, 1);
        let cell = shown.iter().find(|s| s.4.starts_with(b"Dedicated")).unwrap();
        assert!(cell.4.ends_with(b"...") && long.as_bytes().starts_with(&cell.4[..cell.4.len() - 3]));
        assert!(cell.0 + width(&cell.4, false, 9.0) <= MARGIN + 30.0 * MM - CELL_PAD + 0.01);
        let amount = shown.iter().find(|s| s.4.starts_with(b"\x80 ")).unwrap();
        assert!(amount.4.ends_with(b"...") && amount.0 >= MARGIN + 30.0 * MM + CELL_PAD - 0.01);
    }

    #[test]
    fn long_text_wraps_inside_the_margins() {
        let words: Vec<String> = (0..400).map(|i| format!("word{i}")).collect();
        let blocks = vec![Block::Text(words.join(" ")), Block::Text("X".repeat(300))];
        let doc = load(&render(&Doc { title: "Terms".into(), blocks }));
        let mut lines = Vec::new();
        for page in 1..=doc.get_pages().len() as u32 {
            for (x, _, size, bold, bytes) in shown(&doc, page) {
                assert!(x >= MARGIN - 0.01 && x + width(&bytes, bold, size) <= PAGE_W - MARGIN + 0.01);
                if size == BODY_SIZE {
                    lines.push(String::from_utf8(bytes).unwrap());
                }
            }
        }
        // Words stay whole and in order; the unbreakable run is split but complete.
        let (prose, run): (Vec<_>, Vec<_>) = lines.into_iter().partition(|l| l.starts_with("word"));
        assert!(prose.len() > 10 && run.len() > 1);
        assert_eq!(prose.join(" "), words.join(" "));
        assert_eq!(run.concat(), "X".repeat(300));
    }

    #[test]
    fn characters_map_to_winansi() {
        assert_eq!(encode_line("a€–—’•\tÄß€Ω😀"), b"a\x80\x96\x97\x92\x95 \xc4\xdf\x80??");
        let mut s = String::new();
        pdf_string(b"(\x80\\)", &mut s);
        assert_eq!(s, r"(\(\200\\\))");
        assert_eq!(text_string("Rechnung März"), "<FEFF0052006500630068006E0075006E00670020004D00E40072007A>");
    }

    #[test]
    fn output_is_deterministic() {
        let (a, b) = (render(&invoice()), render(&invoice()));
        assert_eq!(a, b);
        assert!(a.starts_with(b"%PDF-1.4\n") && !String::from_utf8_lossy(&a).contains("CreationDate"));
        let empty = render(&Doc { title: String::new(), blocks: vec![] });
        assert_eq!(load(&empty).get_pages().len(), 1);
    }
}
