import Crypto
import Foundation

/// API token secrets: how they are minted and how they are hashed for storage.
///
/// A secret is `js_` + 43 base64url characters (32 random bytes). Only its SHA-256 is stored,
/// so a copy of the database does not let anyone call the API.
public enum TokenHasher {
    public static func makeSecret() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        return "js_" + Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    public static func makeTokenID() -> String {
        var generator = SystemRandomNumberGenerator()
        return "tok_" + (0..<12).map { _ in String(UInt8.random(in: 0..<16, using: &generator), radix: 16) }.joined()
    }

    public static func hash(_ secret: String) -> String {
        SHA256.hash(data: Data(secret.utf8)).map { String(format: "%02x", $0) }.joined()
    }
}
