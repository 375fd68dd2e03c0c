//! Whisper's byte-level BPE tokenizer from `tokenizer.json` (the `tokenizers` crate), for text
//! tokens only: special and timestamp tokens are handled by id (see `SpecialTokens`).

use crate::inference::InferenceError;
use std::path::{Path, PathBuf};

/// Python's `string.punctuation`.
const PUNCTUATION: &str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

/// Text ↔ token ids, as `whisper/tokenizer.py` encodes and decodes them.
pub struct WhisperTokenizer {
    inner: tokenizers::Tokenizer,
    path: PathBuf,
    /// Ids at and above <|endoftext|> are special or timestamps, never text.
    eot: u32,
}

impl WhisperTokenizer {
    pub fn from_file(path: &Path, eot: u32) -> Result<Self, InferenceError> {
        if !path.exists() {
            return Err(InferenceError::ModelMissing {
                path: path.to_path_buf(),
            });
        }
        let inner =
            tokenizers::Tokenizer::from_file(path).map_err(|err| InferenceError::ModelInvalid {
                path: path.to_path_buf(),
                reason: err.to_string(),
            })?;
        Ok(WhisperTokenizer {
            inner,
            path: path.to_path_buf(),
            eot,
        })
    }

    /// The ids of `text`, without the template's special tokens.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, InferenceError> {
        let encoding = self
            .inner
            .encode(text, false)
            .map_err(|err| self.invalid(err))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// The text of `tokens`, leaving out special and timestamp tokens (`Tokenizer.decode`).
    pub fn decode(&self, tokens: &[u32]) -> Result<String, InferenceError> {
        let text_tokens: Vec<u32> = tokens.iter().copied().filter(|&t| t < self.eot).collect();
        self.inner
            .decode(&text_tokens, false)
            .map_err(|err| self.invalid(err))
    }

    /// `split_tokens_on_unicode`: the tokens grouped so each group decodes to whole characters
    /// (a character may take several byte-level tokens), with each group's text.
    pub fn split_tokens_on_unicode(
        &self,
        tokens: &[u32],
    ) -> Result<(Vec<String>, Vec<Vec<u32>>), InferenceError> {
        const REPLACEMENT: char = '\u{fffd}';
        let full: Vec<char> = self.decode(tokens)?.chars().collect();
        let (mut words, mut word_tokens, mut current) = (Vec::new(), Vec::new(), Vec::new());
        let mut offset = 0;
        for &token in tokens {
            current.push(token);
            let decoded = self.decode(&current)?;
            let chars: Vec<char> = decoded.chars().collect();
            let complete = match chars.iter().position(|&c| c == REPLACEMENT) {
                None => true,
                Some(at) => full.get(offset + at) == Some(&REPLACEMENT),
            };
            if complete {
                offset += chars.len();
                words.push(decoded);
                word_tokens.push(std::mem::take(&mut current));
            }
        }
        Ok((words, word_tokens))
    }

    /// `split_tokens_on_spaces`: words as the reference splits them for timestamps (a word
    /// starts at a leading space, a punctuation mark or a special token).
    pub fn split_to_word_tokens(
        &self,
        tokens: &[u32],
    ) -> Result<(Vec<String>, Vec<Vec<u32>>), InferenceError> {
        let (subwords, subword_tokens) = self.split_tokens_on_unicode(tokens)?;
        let mut words: Vec<String> = Vec::new();
        let mut word_tokens: Vec<Vec<u32>> = Vec::new();
        for (subword, tokens) in subwords.into_iter().zip(subword_tokens) {
            let special = tokens.first().is_some_and(|&t| t >= self.eot);
            let with_space = subword.starts_with(' ');
            // Python's `subword.strip() in string.punctuation`: a substring test.
            let punctuation = PUNCTUATION.contains(subword.trim());
            match (
                special || with_space || punctuation || words.is_empty(),
                words.last_mut(),
            ) {
                (false, Some(last)) => {
                    last.push_str(&subword);
                    if let Some(last_tokens) = word_tokens.last_mut() {
                        last_tokens.extend(tokens);
                    }
                }
                _ => {
                    words.push(subword);
                    word_tokens.push(tokens);
                }
            }
        }
        Ok((words, word_tokens))
    }

    fn invalid(&self, err: tokenizers::Error) -> InferenceError {
        InferenceError::ModelInvalid {
            path: self.path.clone(),
            reason: err.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokenizer() -> Option<WhisperTokenizer> {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("models/whisper-tiny.en/tokenizer.json");
        path.exists()
            .then(|| WhisperTokenizer::from_file(&path, 50256).expect("tokenizer loads"))
    }

    #[test]
    fn text_survives_a_round_trip() {
        let Some(tokenizer) = tokenizer() else {
            panic!("models/whisper-tiny.en is missing: run scripts/prepare-models");
        };
        let text = " Walao eh, the quick brown fox can't jump over 42 lazy dogs lah! Café.";
        let ids = tokenizer.encode(text).expect("encodes");
        assert!(
            ids.iter().all(|&id| id < 50256),
            "plain text must give text tokens only"
        );
        assert_eq!(tokenizer.decode(&ids).expect("decodes"), text);
        // " Hello" is one GPT-2 token: 18435.
        assert_eq!(tokenizer.encode(" Hello").expect("encodes"), vec![18435]);
    }

    #[test]
    fn special_and_timestamp_tokens_are_left_out_of_text() {
        let Some(tokenizer) = tokenizer() else {
            panic!("models/whisper-tiny.en is missing: run scripts/prepare-models");
        };
        let mut ids = vec![50257, 50363];
        ids.extend(tokenizer.encode(" lah").expect("encodes"));
        ids.extend([50413, 50256]);
        assert_eq!(tokenizer.decode(&ids).expect("decodes"), " lah");
    }
}
