//! Rendering a samples folder to Markdown: data in, text out.
