// The filters, tests, methods and globals a chat template can use: jinja2's builtin filters
// and tests that chat templates use, transformers' tojson / raise_exception / strftime_now,
// and the Python str/dict methods templates call (`.strip()`, `.items()`, ...).
#pragma once
#include <string>

#include "core/error.h"
#include "text/jinja/interpreter.h"

namespace lumen::text::jinja {

bool has_filter(const std::string& name);
bool has_test(const std::string& name);
Value apply_filter(Interpreter& in, const std::string& name, const Value& input, CallArgs& args);
bool apply_test(Interpreter& in, const std::string& name, const Value& input, CallArgs& args);

// `obj.name` when `name` is a method of obj's Python type: a bound method; unsafe (mutating)
// methods give an Undefined whose use raises jinja2's SecurityError message. nullopt when
// the type has no such attribute.
std::optional<Value> method_of(const Value& obj, const std::string& name);

// The template's globals: range, dict, namespace, raise_exception, strftime_now.
Dict make_globals();

// Thrown by raise_exception(); carries the template's own message.
class TemplateRaised : public Error {
 public:
  explicit TemplateRaised(const std::string& message) : Error(message) {}
};

}  // namespace lumen::text::jinja
