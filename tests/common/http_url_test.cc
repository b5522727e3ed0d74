#include "common/http_url.h"

#include <gtest/gtest.h>

namespace turbine {
namespace {

TEST(HttpUrl, HostPortAndBasePath) {
  auto u = parseHttpUrl("http://10.0.0.5:8000/prefix/v1/", "--url");
  ASSERT_TRUE(u.isOk()) << u.status().message();
  EXPECT_EQ(u->host, "10.0.0.5");
  EXPECT_EQ(u->port, "8000");
  EXPECT_TRUE(u->has_port);
  EXPECT_EQ(u->base_path, "/prefix");  // the trailing /v1 and '/' dropped

  u = parseHttpUrl("http://localhost", "--url");
  ASSERT_TRUE(u.isOk());
  EXPECT_EQ(u->port, "80");
  EXPECT_FALSE(u->has_port);
  EXPECT_EQ(u->base_path, "");

  u = parseHttpUrl("http://[::1]:9000", "--url");
  ASSERT_TRUE(u.isOk());
  EXPECT_EQ(u->host, "::1");
  EXPECT_EQ(u->port, "9000");
}

TEST(HttpUrl, ErrorsNameTheOption) {
  for (const char* bad : {"https://x:1", "ftp://x", "x:80", "http://:80", "http://h:", "http://h:8a"}) {
    auto u = parseHttpUrl(bad, "--upstream");
    ASSERT_FALSE(u.isOk()) << bad;
    EXPECT_EQ(u.status().code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(u.status().message().find("--upstream"), std::string::npos) << u.status().message();
  }
}

}  // namespace
}  // namespace turbine
