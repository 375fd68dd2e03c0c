//! Singlish words: the recogniser's spellings corrected to the app's words, then counts of the
//! target words in each speaker's corrected text.
//!
//! Both steps work on whole words only: a word is a run of letters, the app's rule for a target
//! word ("no letter directly before or after"), so "salah" and "malaysia" contain no target while
//! "what's" holds "what" and "can't" holds "can".
//! The [`Corrector`] and the [`WordCounter`] are built once and then applied to every transcript
//! segment; neither compiles anything per call.
//!
//! The target list keeps the original app's behaviour of counting some ordinary English words
//! that are also Singlish particles or slang — "what", "one", "can", "ah", "power", "steady" —
//! wherever they stand as words, whatever the speaker meant by them.

mod corrections;
mod count;
mod particles;
mod words;

use std::collections::BTreeMap;

pub use corrections::{
    apply, Candidate, Corrector, ENGLISH_LOOKALIKES, PHRASE_CORRECTIONS, WORD_CORRECTIONS,
};
pub use count::WordCounter;
pub use particles::{
    elongated_particle, particle_sites, CLAUSE_END_PARTICLES, CLAUSE_END_SOUNDALIKES,
    INSERTED_PARTICLES, PARTICLE_PRIOR,
};

/// The groups the original app sorts its target words into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Category {
    Vulgar,
    Particles,
    Exclamations,
    Colloquial,
    Actions,
    Intensifiers,
    FoodAndDrink,
    Misc,
}

impl Category {
    /// A lowercase name for the category. The reference names the groups but not the strings the
    /// app stores in `target_words.category`, so don't assume these match that column.
    pub fn name(self) -> &'static str {
        match self {
            Category::Vulgar => "vulgar",
            Category::Particles => "particles",
            Category::Exclamations => "exclamations",
            Category::Colloquial => "colloquial",
            Category::Actions => "actions",
            Category::Intensifiers => "intensifiers",
            Category::FoodAndDrink => "food_and_drink",
            Category::Misc => "misc",
        }
    }
}

/// The original app's built-in target words, each with its category, in the reference's order.
/// "what", "one", "can", "ah", "power" and "steady" are also everyday English and are counted
/// as such, as the original did.
pub const TARGET_WORDS: &[(&str, Category)] = {
    use Category::*;
    &[
        ("walao", Vulgar),
        ("cheebai", Vulgar),
        ("lanjiao", Vulgar),
        ("kanina", Vulgar),
        ("nabei", Vulgar),
        ("lah", Particles),
        ("lor", Particles),
        ("sia", Particles),
        ("meh", Particles),
        ("leh", Particles),
        ("hor", Particles),
        ("ah", Particles),
        ("one", Particles),
        ("what", Particles),
        ("lei", Particles),
        ("ma", Particles),
        ("wah", Exclamations),
        ("eh", Exclamations),
        ("huh", Exclamations),
        ("aiyo", Exclamations),
        ("aiyah", Exclamations),
        ("alamak", Exclamations),
        ("can", Colloquial),
        ("cannot", Colloquial),
        ("paiseh", Colloquial),
        ("shiok", Colloquial),
        ("sian", Colloquial),
        ("bodoh", Colloquial),
        ("kiasu", Colloquial),
        ("kiasi", Colloquial),
        ("bojio", Colloquial),
        ("suaku", Colloquial),
        ("lepak", Colloquial),
        ("blur", Colloquial),
        ("goondu", Colloquial),
        ("cheem", Colloquial),
        ("chim", Colloquial),
        ("chope", Actions),
        ("kena", Actions),
        ("makan", Actions),
        ("tahan", Actions),
        ("gostan", Actions),
        ("cabut", Actions),
        ("sabo", Actions),
        ("arrow", Actions),
        ("sibei", Intensifiers),
        ("buay", Intensifiers),
        ("jialat", Intensifiers),
        ("kopi", FoodAndDrink),
        ("teh", FoodAndDrink),
        ("peng", FoodAndDrink),
        ("atas", Misc),
        ("kaypoh", Misc),
        ("steady", Misc),
        ("power", Misc),
        ("liao", Misc),
    ]
};

/// The built-in target words, for when the database's `target_words` table has none.
pub fn builtin_target_words() -> Vec<String> {
    TARGET_WORDS
        .iter()
        .map(|&(word, _)| word.to_owned())
        .collect()
}

/// Corrects one piece of transcript and counts the target words in the corrected text.
pub fn count_singlish(
    text: &str,
    corrector: &Corrector,
    counter: &WordCounter,
) -> (String, BTreeMap<String, i32>) {
    let corrected = corrector.correct(text);
    let counts = counter.count(&corrected);
    (corrected, counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_list_is_the_reference_list() {
        let per_category = |category: Category| -> Vec<&str> {
            TARGET_WORDS
                .iter()
                .filter(|&&(_, c)| c == category)
                .map(|&(w, _)| w)
                .collect()
        };
        assert_eq!(
            per_category(Category::Vulgar),
            ["walao", "cheebai", "lanjiao", "kanina", "nabei"]
        );
        assert_eq!(
            per_category(Category::Particles),
            ["lah", "lor", "sia", "meh", "leh", "hor", "ah", "one", "what", "lei", "ma"]
        );
        assert_eq!(
            per_category(Category::Exclamations),
            ["wah", "eh", "huh", "aiyo", "aiyah", "alamak"]
        );
        assert_eq!(
            per_category(Category::Colloquial),
            [
                "can", "cannot", "paiseh", "shiok", "sian", "bodoh", "kiasu", "kiasi", "bojio",
                "suaku", "lepak", "blur", "goondu", "cheem", "chim"
            ]
        );
        assert_eq!(
            per_category(Category::Actions),
            ["chope", "kena", "makan", "tahan", "gostan", "cabut", "sabo", "arrow"]
        );
        assert_eq!(
            per_category(Category::Intensifiers),
            ["sibei", "buay", "jialat"]
        );
        assert_eq!(
            per_category(Category::FoodAndDrink),
            ["kopi", "teh", "peng"]
        );
        assert_eq!(
            per_category(Category::Misc),
            ["atas", "kaypoh", "steady", "power", "liao"]
        );
        assert_eq!(builtin_target_words().len(), 56);
    }

    #[test]
    fn count_singlish_corrects_then_counts() {
        let corrector = Corrector::new();
        let counter = WordCounter::builtin();
        let (corrected, counts) = count_singlish("Wah lao, la! She ok one", &corrector, &counter);
        assert_eq!(corrected, "walao, lah! shiok one");
        let expected: BTreeMap<String, i32> = [("lah", 1), ("one", 1), ("shiok", 1), ("walao", 1)]
            .map(|(w, n)| (w.to_owned(), n))
            .into();
        assert_eq!(counts, expected);
    }
}
