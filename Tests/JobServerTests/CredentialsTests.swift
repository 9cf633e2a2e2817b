import HTTPTypes
import Testing
@testable import JobServer

/// How a token is read from the headers: the scheme case-insensitively, blanks trimmed, and
/// anything ambiguous refused.
struct CredentialsTests {
    @Test(arguments: [
        ("Bearer js_abc", "js_abc"),
        ("bearer js_abc", "js_abc"),
        ("BEARER js_abc", "js_abc"),
        ("Bearer    js_abc  ", "js_abc"),
        ("Bearer \tjs_abc\t", "js_abc"),
        ("Bearer js_é", "js_é"),
    ])
    func bearerTokens(header: String, token: String) {
        #expect(Credentials.headerToken(in: [.authorization: header]) == token)
    }

    @Test(arguments: ["Basic js_abc", "Bearerjs_abc", "Bearer", "Bearer ", "Bearer \t ", "Bearers js_abc", "js_abc", "Token js_abc"])
    func otherSchemesAndEmptyTokensAreNoToken(header: String) {
        #expect(Credentials.headerToken(in: [.authorization: header]) == nil)
    }

    @Test func anotherSchemeIsRefusedEvenNextToAnAPIKey() {
        #expect(Credentials.headerToken(in: [.authorization: "Basic x", Credentials.apiKey: "js_abc"]) == nil)
        #expect(Credentials.headerToken(in: [Credentials.apiKey: "js_abc"]) == "js_abc")
    }
}
