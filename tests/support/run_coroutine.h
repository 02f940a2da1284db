// Runs one coroutine call to completion on an io_context of its own, on the calling thread:
// for testing an asynchronous API from a plain test body.
#pragma once

#include <chrono>
#include <optional>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>

#include "common/status.h"

namespace plyr::testing {

// `call(executor)` returns an awaitable of T (a Status or a StatusOr); its result, or a
// DeadlineExceeded failure (and a test failure) when it has not finished within `bound`.
template <typename T, typename Call>
T RunCoroutine(Call call, std::chrono::milliseconds bound = std::chrono::seconds(30)) {
  boost::asio::io_context io;
  std::optional<T> result;
  boost::asio::co_spawn(
      io,
      [&]() -> boost::asio::awaitable<void> {
        const boost::asio::any_io_executor executor = io.get_executor();
        result.emplace(co_await call(executor));
      },
      boost::asio::detached);
  io.run_for(bound);
  if (!result) {
    ADD_FAILURE() << "the call did not complete within the test's bound";
    return T(Status(StatusCode::kDeadlineExceeded, "the test's bound"));
  }
  return std::move(*result);
}

}  // namespace plyr::testing
