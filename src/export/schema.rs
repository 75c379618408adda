//! The tables an export fills, column by column, as Neuronpedia's `apps/webapp/prisma/schema.prisma`
//! declares them (hijohnnylin/neuronpedia @ ebb8426f): the name, the type, whether a row may
//! carry `null` (`?` in the schema) and whether it must carry the column at all (no default
//! in the database; Prisma's client-side `cuid()` ids do not count for the bulk import, which
//! inserts with SQL). `--check` validates every line of a layout against these.

use serde_json::Value;

/// A column's type (Prisma's, as PostgreSQL stores it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnType {
    /// `String` (`text`); also enums and `DateTime` given as ISO 8601 text.
    Text,
    /// `Int` (`integer`: 32 bits).
    Int,
    /// `Float` (`double precision`).
    Float,
    Bool,
    TextList,
    IntList,
    FloatList,
    /// `Json` (`jsonb`): anything.
    Json,
}

/// One column.
#[derive(Clone, Copy, Debug)]
pub struct Column {
    pub name: &'static str,
    pub kind: ColumnType,
    /// `null` is allowed (`Type?`).
    pub nullable: bool,
    /// A row without it fails (no default).
    pub required: bool,
}

/// One table.
pub struct Table {
    pub name: &'static str,
    pub columns: &'static [Column],
}

impl Table {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// What is wrong with `value` in column `column`, if anything.
    pub fn value_problem(&self, column: &Column, value: &Value) -> Option<String> {
        if value.is_null() {
            return (!column.nullable)
                .then(|| format!("{} is null, but the column is NOT NULL", column.name));
        }
        let fits = |element: &Value, kind: ColumnType| match kind {
            ColumnType::Text => element.is_string(),
            ColumnType::Int => element.as_i64().is_some_and(|i| i32::try_from(i).is_ok()),
            ColumnType::Float => element.is_number(),
            ColumnType::Bool => element.is_boolean(),
            _ => true,
        };
        let (ok, wanted) = match column.kind {
            ColumnType::TextList | ColumnType::IntList | ColumnType::FloatList => {
                let element = match column.kind {
                    ColumnType::TextList => ColumnType::Text,
                    ColumnType::IntList => ColumnType::Int,
                    _ => ColumnType::Float,
                };
                let ok = value
                    .as_array()
                    .is_some_and(|items| items.iter().all(|item| fits(item, element)));
                (ok, format!("a list of {}", describe(element)))
            }
            ColumnType::Json => (true, String::new()),
            kind => (fits(value, kind), describe(kind).to_string()),
        };
        (!ok).then(|| format!("{} is {}, not {wanted}", column.name, short(value)))
    }
}

fn describe(kind: ColumnType) -> &'static str {
    match kind {
        ColumnType::Text => "text",
        ColumnType::Int => "a 32-bit integer",
        ColumnType::Float => "a number",
        ColumnType::Bool => "true or false",
        _ => "a list",
    }
}

/// A value for a message: its JSON, cut to 40 characters.
pub fn short(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(40) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text,
    }
}

use ColumnType::{Bool, Float, FloatList, Int, IntList, Json, Text, TextList};

const fn req(name: &'static str, kind: ColumnType) -> Column {
    Column {
        name,
        kind,
        nullable: false,
        required: true,
    }
}
/// Has a default, never null.
const fn def(name: &'static str, kind: ColumnType) -> Column {
    Column {
        name,
        kind,
        nullable: false,
        required: false,
    }
}
/// `Type?`.
const fn opt(name: &'static str, kind: ColumnType) -> Column {
    Column {
        name,
        kind,
        nullable: true,
        required: false,
    }
}

pub const NEURON: Table = Table {
    name: "Neuron",
    columns: &[
        req("modelId", Text),
        req("layer", Text),
        req("index", Text),
        opt("sourceSetName", Text),
        opt("creatorId", Text),
        def("createdAt", Text),
        opt("maxActApprox", Float),
        def("hasVector", Bool),
        def("vector", FloatList),
        opt("vectorLabel", Text),
        opt("vectorDefaultSteerStrength", Float),
        opt("hookName", Text),
        def("topkCosSimIndices", IntList),
        def("topkCosSimValues", FloatList),
        def("neuron_alignment_indices", IntList),
        def("neuron_alignment_values", FloatList),
        def("neuron_alignment_l1", FloatList),
        def("correlated_neurons_indices", IntList),
        def("correlated_neurons_pearson", FloatList),
        def("correlated_neurons_l1", FloatList),
        def("correlated_features_indices", IntList),
        def("correlated_features_pearson", FloatList),
        def("correlated_features_l1", FloatList),
        def("neg_str", TextList),
        def("neg_values", FloatList),
        def("pos_str", TextList),
        def("pos_values", FloatList),
        def("frac_nonzero", Float),
        def("freq_hist_data_bar_heights", FloatList),
        def("freq_hist_data_bar_values", FloatList),
        def("logits_hist_data_bar_heights", FloatList),
        def("logits_hist_data_bar_values", FloatList),
        def("decoder_weights_dist", FloatList),
        opt("umap_cluster", Int),
        opt("umap_log_feature_sparsity", Float),
        opt("umap_x", Float),
        opt("umap_y", Float),
    ],
};

pub const ACTIVATION: Table = Table {
    name: "Activation",
    columns: &[
        req("id", Text),
        req("tokens", TextList),
        opt("dataIndex", Text),
        req("index", Text),
        req("layer", Text),
        req("modelId", Text),
        opt("dataSource", Text),
        req("maxValue", Float),
        req("maxValueTokenIndex", Int),
        req("minValue", Float),
        req("values", FloatList),
        def("dfaValues", FloatList),
        opt("dfaTargetIndex", Int),
        opt("dfaMaxValue", Float),
        def("zQIndices", IntList),
        def("zKIndices", IntList),
        def("zValues", FloatList),
        req("creatorId", Text),
        def("createdAt", Text),
        def("lossValues", FloatList),
        opt("logitContributions", Text),
        opt("binMin", Float),
        opt("binMax", Float),
        opt("binContains", Float),
        opt("qualifyingTokenIndex", Int),
        // Exports store attention sources as one zIndices; the importer splits it.
        opt("zIndices", Json),
    ],
};

pub const EXPLANATION: Table = Table {
    name: "Explanation",
    columns: &[
        req("id", Text),
        req("modelId", Text),
        req("layer", Text),
        req("index", Text),
        req("description", Text),
        req("authorId", Text),
        opt("triggeredByUserId", Text),
        opt("notes", Text),
        def("scoreV1", Float),
        opt("scoreV2", Float),
        opt("umap_x", Float),
        opt("umap_y", Float),
        opt("umap_cluster", Int),
        opt("umap_log_feature_sparsity", Float),
        opt("typeName", Text),
        opt("explanationModelName", Text),
        def("createdAt", Text),
        def("updatedAt", Text),
    ],
};

pub const MODEL: Table = Table {
    name: "Model",
    columns: &[
        req("id", Text),
        def("displayNameShort", Text),
        def("displayName", Text),
        req("creatorId", Text),
        opt("tlensId", Text),
        opt("openRouterId", Text),
        opt("dimension", Int),
        def("thinking", Bool),
        def("visibility", Text),
        opt("defaultSourceSetName", Text),
        opt("defaultSourceId", Text),
        opt("defaultGraphSourceSetName", Text),
        def("inferenceEnabled", Bool),
        def("instruct", Bool),
        req("layers", Int),
        req("neuronsPerLayer", Int),
        def("createdAt", Text),
        req("owner", Text),
        def("updatedAt", Text),
        opt("website", Text),
    ],
};

pub const SOURCE_SET: Table = Table {
    name: "SourceSet",
    columns: &[
        req("modelId", Text),
        req("name", Text),
        def("hasDashboards", Bool),
        def("allowInferenceSearch", Bool),
        def("visibility", Text),
        req("description", Text),
        def("type", Text),
        req("creatorName", Text),
        def("urls", TextList),
        opt("creatorEmail", Text),
        req("creatorId", Text),
        opt("releaseName", Text),
        def("hasGraphs", Bool),
        def("graphEnabled", Bool),
        def("similarityMatrixEnabled", Bool),
        opt("defaultOfModelId", Text),
        opt("defaultGraphModelId", Text),
        def("defaultRange", Int),
        def("defaultShowBreaks", Bool),
        def("showDfa", Bool),
        def("showCorrelated", Bool),
        def("showHeadAttribution", Bool),
        def("showUmap", Bool),
        def("createdAt", Text),
    ],
};

pub const SOURCE: Table = Table {
    name: "Source",
    columns: &[
        req("id", Text),
        req("modelId", Text),
        def("hasDashboards", Bool),
        def("inferenceEnabled", Bool),
        opt("saelensConfig", Json),
        opt("saelensRelease", Text),
        opt("saelensSaeId", Text),
        opt("hfRepoId", Text),
        opt("hfFolderId", Text),
        def("visibility", Text),
        opt("defaultOfModelId", Text),
        req("setName", Text),
        req("creatorId", Text),
        def("hasUmap", Bool),
        def("hasUmapLogSparsity", Bool),
        def("hasUmapClusters", Bool),
        opt("num_prompts", Int),
        opt("num_tokens_in_prompt", Int),
        opt("dataset", Text),
        opt("notes", Text),
        opt("cosSimMatchModelId", Text),
        opt("cosSimMatchSourceId", Text),
        def("createdAt", Text),
        // Older exports carry it; the importer drops it when empty.
        opt("inferenceHosts", Json),
    ],
};

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_are_checked_against_the_column_type() {
        let check = |name: &str, value: Value| {
            let column = ACTIVATION.column(name).unwrap();
            ACTIVATION.value_problem(column, &value)
        };
        assert_eq!(check("tokens", json!(["a", "b"])), None);
        assert!(check("tokens", json!(["a", 1]))
            .unwrap()
            .contains("list of text"));
        assert!(check("maxValueTokenIndex", json!(1.5))
            .unwrap()
            .contains("32-bit"));
        assert!(check("maxValueTokenIndex", json!(1u64 << 40)).is_some());
        assert!(check("maxValue", json!(null)).unwrap().contains("NOT NULL"));
        assert_eq!(check("binMin", json!(null)), None);
        assert!(check("index", json!(7)).unwrap().contains("not text"));
        assert!(short(&json!("x".repeat(100))).ends_with('…'));
    }
}
