//! Finding apps in the catalog: `app list --category CAT` and `app search WORD...`, and the
//! catalog table the README carries. Pure functions over [`Catalog::list`].

use crate::definition::{AppDefinition, Category};
use crate::{AppsError, Catalog, CatalogEntry};

/// Which apps to show. Every given condition must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppQuery {
    /// Only apps of this category.
    pub category: Option<Category>,
    /// Words that must each appear (case-insensitive) in the app's name, title, description or
    /// category. Empty means every app.
    pub words: Vec<String>,
}

impl AppQuery {
    /// A query from CLI-style text: the category by name (an error names the allowed ones) and
    /// free text split on whitespace.
    pub fn parse(category: Option<&str>, text: &[String]) -> Result<AppQuery, AppsError> {
        let category = category.map(Category::parse).transpose()?;
        let words = text
            .iter()
            .flat_map(|t| t.split_whitespace())
            .map(str::to_lowercase)
            .collect();
        Ok(AppQuery { category, words })
    }
}

/// How well an app matches: `None` when it does not, lower is better (a word in the name or
/// title ranks above a word found only in the description).
fn rank(def: &AppDefinition, words: &[String]) -> Option<u8> {
    let name = def.name.to_lowercase();
    let title = def.title.as_deref().unwrap_or("").to_lowercase();
    let description = def.description.to_lowercase();
    let category = def.category.as_str();
    let mut best = 1;
    for word in words {
        if name.contains(word.as_str()) || title.contains(word.as_str()) {
            best = 0;
        } else if !(description.contains(word.as_str()) || category.contains(word.as_str())) {
            return None;
        }
    }
    Some(if words.is_empty() { 0 } else { best })
}

impl Catalog {
    /// The entries matching `query`: apps whose name or title holds a word first, then the
    /// rest, each group sorted by name.
    pub fn find(&self, query: &AppQuery) -> Vec<&CatalogEntry> {
        let mut hits: Vec<(u8, &CatalogEntry)> = self
            .list()
            .filter(|e| query.category.is_none_or(|c| e.definition.category == c))
            .filter_map(|e| rank(&e.definition, &query.words).map(|r| (r, e)))
            .collect();
        hits.sort_by(|a, b| (a.0, &a.1.definition.name).cmp(&(b.0, &b.1.definition.name)));
        hits.into_iter().map(|(_, e)| e).collect()
    }
}

/// Markers around the generated table in the README.
pub const TABLE_BEGIN: &str = "<!-- catalog-table:begin (generated from livchat-apps/apps; LIVCHAT_UPDATE_README=1 cargo test -p livchat-apps --test readme) -->";
pub const TABLE_END: &str = "<!-- catalog-table:end -->";

/// The catalog as a Markdown table (app, version, category, dependencies, minimum resources),
/// one row per app sorted by category then name.
pub fn catalog_markdown_table(catalog: &Catalog) -> String {
    let mut defs: Vec<&AppDefinition> = catalog.list().map(|e| &e.definition).collect();
    defs.sort_by(|a, b| (a.category, &a.name).cmp(&(b.category, &b.name)));
    let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
    let mut out = String::from(
        "| app | title | version | category | dependencies | min. vCPU | min. RAM |\n| --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for d in defs {
        let deps: Vec<String> = d
            .dependencies
            .iter()
            .map(|dep| match (&dep.database, dep.redis_db) {
                (Some(db), _) if !db.extensions.is_empty() => {
                    format!("{} ({})", dep.app, db.extensions.join(", "))
                }
                _ => dep.app.clone(),
            })
            .collect();
        let ram = d.requirements.min_ram_mb;
        let ram = if ram >= 1024 && ram % 1024 == 0 {
            format!("{} GB", ram / 1024)
        } else {
            format!("{ram} MB")
        };
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} | {} | {} |\n",
            d.name,
            cell(d.title.as_deref().unwrap_or(&d.name)),
            cell(&d.version),
            d.category.as_str(),
            if deps.is_empty() {
                "-".to_string()
            } else {
                deps.join(", ")
            },
            d.requirements.min_cpu_cores,
            ram
        ));
    }
    out
}

/// `readme` with the text between the table markers replaced by the current table; `None`
/// when the markers are missing or out of order.
pub fn with_catalog_table(readme: &str, catalog: &Catalog) -> Option<String> {
    let begin = readme.find(TABLE_BEGIN)?;
    let after_begin = begin + TABLE_BEGIN.len();
    let end = after_begin + readme[after_begin..].find(TABLE_END)?;
    Some(format!(
        "{}\n\n{}\n{}",
        &readme[..after_begin],
        catalog_markdown_table(catalog),
        &readme[end..]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        let def = |name: &str, title: &str, category: &str, description: &str| {
            format!(
                "name: {name}\ntitle: {title}\nversion: '1'\ncategory: {category}\ndescription: {description}\nimages: {{a: 'x:1'}}\ntemplate: {{inline: 'services: {{}}'}}\n"
            )
        };
        let a = def(
            "alpha",
            "Alpha Chat",
            "messaging",
            "Talks to customers, like gamma.",
        );
        let b = def("beta", "Beta", "ai", "Chat with an LLM.");
        let c = def("gamma", "Gamma", "database", "Stores rows.");
        Catalog::from_sources(&[
            (a.as_str(), "services: {}\n", "a"),
            (b.as_str(), "services: {}\n", "b"),
            (c.as_str(), "services: {}\n", "c"),
        ])
        .unwrap()
    }

    fn names(entries: Vec<&CatalogEntry>) -> Vec<&str> {
        entries.iter().map(|e| e.definition.name.as_str()).collect()
    }

    #[test]
    fn search_matches_every_word_in_name_title_description_or_category() {
        let c = catalog();
        let q = |text: &str| AppQuery::parse(None, &[text.to_string()]).unwrap();
        assert_eq!(names(c.find(&q("CHAT"))), ["alpha", "beta"]);
        assert_eq!(names(c.find(&q("chat llm"))), ["beta"]);
        assert_eq!(names(c.find(&q("database"))), ["gamma"]);
        assert_eq!(names(c.find(&q("alpha customers"))), ["alpha"]);
        assert!(c.find(&q("nothing-like-this")).is_empty());
        assert_eq!(c.find(&q("")).len(), 3);
    }

    #[test]
    fn a_name_or_title_match_ranks_before_a_description_match() {
        let c = catalog();
        let q = |text: &str| AppQuery::parse(None, &[text.to_string()]).unwrap();
        // gamma is named so; alpha only mentions it, and comes after despite its name.
        assert_eq!(names(c.find(&q("gamma"))), ["gamma", "alpha"]);
        // A title counts as a name: "Alpha Chat" before beta's description.
        assert_eq!(names(c.find(&q("chat"))), ["alpha", "beta"]);
    }

    #[test]
    fn category_filter_combines_with_words() {
        let c = catalog();
        let q = AppQuery::parse(Some("ai"), &[]).unwrap();
        assert_eq!(names(c.find(&q)), ["beta"]);
        let q = AppQuery::parse(Some("messaging"), &["llm".into()]).unwrap();
        assert!(c.find(&q).is_empty());
    }

    #[test]
    fn an_unknown_category_is_an_error_listing_the_allowed_ones() {
        let err = AppQuery::parse(Some("games"), &[]).unwrap_err().to_string();
        assert!(err.contains("category"), "{err}");
        assert!(err.contains("games") && err.contains("automation"), "{err}");
    }

    #[test]
    fn the_table_has_one_row_per_app_and_escapes_pipes() {
        let c = catalog();
        let table = catalog_markdown_table(&c);
        assert_eq!(table.lines().count(), 2 + 3);
        assert!(
            table.contains("| `alpha` | Alpha Chat | 1 | messaging | - | 0 | 0 MB |"),
            "{table}"
        );
        let readme = format!("intro\n{TABLE_BEGIN}\nold\n{TABLE_END}\nrest\n");
        let new = with_catalog_table(&readme, &c).unwrap();
        assert!(new.starts_with("intro\n") && new.ends_with(&format!("{TABLE_END}\nrest\n")));
        assert!(!new.contains("old") && new.contains("`gamma`"));
        assert_eq!(with_catalog_table(&new, &c).unwrap(), new);
        assert!(with_catalog_table("no markers", &c).is_none());
    }
}
