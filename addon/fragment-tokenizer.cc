#include "fragment-tokenizer.h"

#include <algorithm>
#include <cctype>
#include <climits>
#include <stdexcept>

namespace semantic {
namespace {

/**
 * Bytes the cached pieces take at most, counted as the allocator sees them (text, tokens, the list
 * and hash nodes): the conversations of many agents at once, least recently used go first.
 */
constexpr size_t kMaxBytes = 32u << 20;
/**
 * Pieces seen once that the doorkeeper remembers (8 bytes each) before it starts over. A piece is
 * cached on its second sight: a conversation resent every turn is, a one-shot request's text is not.
 */
constexpr size_t kMaxSeen = 1u << 16;
constexpr uint32_t kSpecialAttrs = LLAMA_TOKEN_ATTR_CONTROL | LLAMA_TOKEN_ATTR_USER_DEFINED | LLAMA_TOKEN_ATTR_UNKNOWN;

/** The list node (an Entry and two links), the index node (key, iterator, link, cached hash) and its bucket. */
constexpr size_t kNodeBytes = sizeof(std::string) + sizeof(std::vector<llama_token>) + 2 * sizeof(void*) + sizeof(std::string_view) + 4 * sizeof(void*);

size_t HeapBytes(const std::string& text) { return text.capacity() > 15 ? text.capacity() + 1 : 0; }
size_t EntryBytes(const std::string& text, const std::vector<llama_token>& tokens) {
  return HeapBytes(text) + tokens.capacity() * sizeof(llama_token) + kNodeBytes;
}

}  // namespace

FragmentTokenizer::FragmentTokenizer(const llama_vocab* vocab) : vocab_(vocab) {
  enum llama_vocab_type type = llama_vocab_type(vocab);
  supported_ = type == LLAMA_VOCAB_TYPE_SPM || type == LLAMA_VOCAB_TYPE_BPE;
  // The same list llama_vocab::impl builds (cache_special_tokens): ids in order, then std::sort by length.
  std::vector<llama_token> ids;
  int32_t n = llama_vocab_n_tokens(vocab);
  for (llama_token id = 0; id < n; ++id) {
    if (static_cast<uint32_t>(llama_vocab_get_attr(vocab, id)) & kSpecialAttrs) ids.push_back(id);
  }
  std::vector<std::string> texts(n);
  for (llama_token id : ids) texts[id] = llama_vocab_get_text(vocab, id);
  std::sort(ids.begin(), ids.end(), [&](llama_token a, llama_token b) { return texts[a].size() > texts[b].size(); });
  for (llama_token id : ids) {
    if (texts[id].empty()) continue;  // llama.cpp would loop forever on one; no vocabulary has it
    uint32_t attr = llama_vocab_get_attr(vocab, id);
    specials_.push_back({id, texts[id], (attr & LLAMA_TOKEN_ATTR_LSTRIP) != 0, (attr & LLAMA_TOKEN_ATTR_RSTRIP) != 0});
  }
}

std::vector<llama_token> FragmentTokenizer::Tokenize(const std::string& text, bool addSpecial) {
  std::vector<llama_token> out;
  if (addSpecial && llama_vocab_get_add_bos(vocab_)) out.push_back(llama_vocab_bos(vocab_));
  for (const Fragment& fragment : Partition(text)) {
    if (fragment.token != LLAMA_TOKEN_NULL) {
      out.push_back(fragment.token);
      continue;
    }
    AppendPiece(std::string_view(text).substr(fragment.offset, fragment.length), out);
  }
  if (addSpecial && llama_vocab_get_add_eos(vocab_)) out.push_back(llama_vocab_eos(vocab_));
  return out;
}

std::vector<FragmentTokenizer::Fragment> FragmentTokenizer::Partition(const std::string& text) const {
  std::vector<Fragment> fragments;
  if (!text.empty()) fragments.push_back({LLAMA_TOKEN_NULL, 0, text.size()});
  for (const Special& special : specials_) {
    if (text.find(special.text) == std::string::npos) continue;
    SplitAt(special, text, fragments);
  }
  return fragments;
}

// tokenizer_st_partition's inner loop, for one special token over every raw fragment: the text left of
// each occurrence (less trailing spaces for an lstrip token), the token, then the same on the right.
void FragmentTokenizer::SplitAt(const Special& special, const std::string& text, std::vector<Fragment>& fragments) const {
  std::vector<Fragment> split;
  split.reserve(fragments.size() + 8);
  for (const Fragment& fragment : fragments) {
    if (fragment.token != LLAMA_TOKEN_NULL) {
      split.push_back(fragment);
      continue;
    }
    size_t offset = fragment.offset;
    size_t length = fragment.length;
    while (length > 0) {
      size_t match = std::string_view(text.data(), offset + length).find(special.text, offset);
      if (match == std::string_view::npos) {
        split.push_back({LLAMA_TOKEN_NULL, offset, length});
        break;
      }
      size_t left = match - offset;
      if (special.lstrip) {
        while (left > 0 && isspace(text[offset + left - 1])) left--;
      }
      if (left > 0) split.push_back({LLAMA_TOKEN_NULL, offset, left});
      split.push_back({special.id, match, special.text.size()});
      size_t end = offset + length;
      offset = match + special.text.size();
      length = end - offset;
      if (special.rstrip) {
        while (length > 0 && isspace(text[offset])) {
          offset++;
          length--;
        }
      }
    }
  }
  fragments.swap(split);
}

void FragmentTokenizer::AppendPiece(std::string_view text, std::vector<llama_token>& out) {
  auto found = index_.find(text);
  if (found != index_.end()) {
    lru_.splice(lru_.begin(), lru_, found->second);
    out.insert(out.end(), found->second->tokens.begin(), found->second->tokens.end());
    return;
  }
  std::vector<llama_token> tokens = TokenizeUncached(text);
  out.insert(out.end(), tokens.begin(), tokens.end());
  if (!SeenBefore(text)) return;
  Entry entry{std::string(text), std::move(tokens)};
  size_t bytes = EntryBytes(entry.text, entry.tokens);
  if (bytes > kMaxBytes / 4) return;  // one huge text would push out every agent's conversation
  while (!lru_.empty() && bytes_ + bytes > kMaxBytes) {
    const Entry& oldest = lru_.back();
    bytes_ -= EntryBytes(oldest.text, oldest.tokens);
    index_.erase(std::string_view(oldest.text));
    lru_.pop_back();
  }
  lru_.push_front(std::move(entry));
  index_.emplace(std::string_view(lru_.front().text), lru_.begin());
  bytes_ += bytes;
}

// A hash collision only caches a piece one sight early; starting over forgets what was seen once.
bool FragmentTokenizer::SeenBefore(std::string_view text) {
  size_t hash = std::hash<std::string_view>{}(text);
  if (seen_.erase(hash) > 0) return true;
  if (seen_.size() >= kMaxSeen) seen_.clear();
  seen_.insert(hash);
  return false;
}

// A piece holds no special token's text, so parse_special=false changes nothing; no BOS/EOS of its own.
std::vector<llama_token> FragmentTokenizer::TokenizeUncached(std::string_view text) const {
  std::vector<llama_token> tokens(text.size() + 8);
  int32_t n = llama_tokenize(vocab_, text.data(), text.size(), tokens.data(), tokens.size(), false, false);
  if (n < 0) {
    if (n == INT32_MIN) throw std::length_error("llama_tokenize: result too large");
    tokens.resize(-n);
    n = llama_tokenize(vocab_, text.data(), text.size(), tokens.data(), tokens.size(), false, false);
  }
  tokens.resize(n);
  tokens.shrink_to_fit();  // sized for the worst case (a token a byte): a cached piece keeps only its own
  return tokens;
}

}  // namespace semantic
