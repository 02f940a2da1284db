// RunBlocking: runs a blocking call (a SQLite read or write, an fsync) on a thread pool and resumes the calling
// coroutine on its own executor with the result, so I/O threads never wait for the disk.
#pragma once

#include <functional>
#include <utility>

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace plyr {

template <typename T>
boost::asio::awaitable<T> RunBlocking(boost::asio::thread_pool& pool, std::function<T()> call) {
  // A plain callback chain rather than a coroutine on the pool: the call owns its captures.
  co_return co_await boost::asio::async_initiate<const boost::asio::use_awaitable_t<>&, void(T)>(
      [&pool](auto handler, std::function<T()> work) {
        boost::asio::post(pool, [work = std::move(work), handler = std::move(handler)]() mutable {
          T result = work();
          auto executor = boost::asio::get_associated_executor(handler);
          boost::asio::post(executor, [handler = std::move(handler), result = std::move(result)]() mutable {
            std::move(handler)(std::move(result));
          });
        });
      },
      boost::asio::use_awaitable, std::move(call));
}

}  // namespace plyr
