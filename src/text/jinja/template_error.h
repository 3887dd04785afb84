// The error a template raises while rendering, located in the template source.
#pragma once
#include <string>

#include "core/error.h"

namespace lumen::text {

// what(): "chat template line 3:14: <what went wrong>". raised_by_template() is true when
// the template itself called raise_exception('...'); message() is then its text.
class TemplateError : public Error {
 public:
  TemplateError(const std::string& what, bool raised_by_template, std::string message)
      : Error(what), raised_(raised_by_template), message_(std::move(message)) {}
  bool raised_by_template() const { return raised_; }
  const std::string& message() const { return message_; }

 private:
  bool raised_;
  std::string message_;
};

}  // namespace lumen::text
